/// Stateless handlers and sagas hosted by one endpoint, by message type.
public struct HandlerRegistry: Sendable {
    typealias StatelessHandler = @Sendable (IncomingMessage, HandlerContext) async throws -> Void

    struct Stateless: Sendable {
        var key: String
        var handle: StatelessHandler
    }

    private(set) var sagas: [any SagaRunner] = []
    private(set) var stateless: [String: [Stateless]] = [:]
    private(set) var sagaTypesByMessage: [String: [Int]] = [:]
    /// The message types that arrive from the broker (a saga's timeout types arrive only from its store).
    private(set) var brokerTypes: Set<String> = []
    /// The Swift type behind each message type name, to catch two types that share a name by accident.
    private var swiftTypes: [String: MessageSwiftType] = [:]

    private struct MessageSwiftType: Sendable {
        var id: ObjectIdentifier
        var name: String
        var defaultNamed: Bool
    }

    public init() {}

    /// Hosts a saga, defined by its `define`.
    public mutating func register<S: Saga>(_ saga: S.Type) {
        register(saga) { S.define(&$0) }
    }

    /// Hosts a saga with a definition built by `define`: for sagas that take settings, e.g.
    /// `registry.register(TransferSaga.self) { TransferSaga.define(&$0, bankTimeout: .seconds(5)) }`.
    public mutating func register<S: Saga>(_ saga: S.Type, define: (inout SagaDefinition<S>) -> Void) {
        var definition = SagaDefinition<S>()
        define(&definition)
        // The saga type keys the stored state: two sagas under one name would read each other's.
        if let other = sagas.first(where: { $0.sagaType == S.sagaType }) {
            preconditionFailure(Self.duplicateSagaMessage(S.sagaType, first: other.swiftName,
                                                          second: String(reflecting: S.self)))
        }
        for route in definition.routes.values {
            claim(route.messageType, MessageSwiftType(id: route.swiftType, name: route.swiftName,
                                                      defaultNamed: route.defaultNamed))
            if !route.isTimeout { brokerTypes.insert(route.messageType) }
        }
        let runner = TypedSagaRunner<S>(definition: definition)
        let index = sagas.count
        sagas.append(runner)
        for type in runner.messageTypes {
            sagaTypesByMessage[type, default: []].append(index)
        }
    }

    /// Hosts a stateless handler for `M`: it uses the same context (send, publish, reply) but has no
    /// state. It may be async (an integration step calling an HTTP API); its emitted messages are committed
    /// with the inbox record like a saga's.
    public mutating func handle<M: Message>(
        _ type: M.Type, _ handler: @escaping @Sendable (M, HandlerContext) async throws -> Void
    ) {
        claim(M.messageType, MessageSwiftType(id: ObjectIdentifier(M.self), name: String(reflecting: M.self),
                                              defaultNamed: M.messageType == String(describing: M.self)))
        brokerTypes.insert(M.messageType)
        // The key goes into the ids of the messages the handler emits, so it depends only on the message
        // type and the handler's place among that type's handlers: registering handlers of other types,
        // or in another order, does not change them.
        let earlier = stateless[M.messageType]?.count ?? 0
        let key = earlier == 0 ? M.messageType : "\(M.messageType)#\(earlier + 1)"
        stateless[M.messageType, default: []].append(Stateless(key: key) { incoming, context in
            let message = try MessageCoding.decode(type, from: incoming.body, messageType: incoming.type)
            try await handler(message, context)
        })
    }

    /// The message types some saga or handler handles.
    public var handledTypes: Set<String> {
        Set(sagaTypesByMessage.keys).union(stateless.keys)
    }

    public func handles(type: String) -> Bool {
        sagaTypesByMessage[type] != nil || stateless[type] != nil
    }

    /// Whether a message of this type consumed from a queue has a handler. A saga's timeout type alone
    /// does not count: timeouts come from the saga's store, and one published from outside has no saga
    /// instance to go to.
    public func handlesFromBroker(type: String) -> Bool {
        brokerTypes.contains(type)
    }

    /// Two different Swift types under one default name (e.g. `Billing.Placed` and `Shipping.Placed`,
    /// both "Placed") would each be decoded as the other; that stops the program where it is registered.
    /// An explicit `messageType` shared by two types is a choice (two views of one message) and allowed.
    private mutating func claim(_ messageType: String, _ type: MessageSwiftType) {
        if let other = swiftTypes[messageType], other.id != type.id, other.defaultNamed, type.defaultNamed {
            preconditionFailure(Self.sharedNameMessage(messageType, first: other.name, second: type.name))
        }
        if swiftTypes[messageType] == nil { swiftTypes[messageType] = type }
    }

    static func sharedNameMessage(_ messageType: String, first: String, second: String) -> String {
        "message types \(first) and \(second) both have the name '\(messageType)' (by default a message type's "
            + "name is its Swift name, without module or enclosing types), so messages of one would be decoded "
            + "as the other: give one of them its own `static var messageType`"
    }

    static func duplicateSagaMessage(_ sagaType: String, first: String, second: String) -> String {
        first == second
            ? "saga \(first) is registered twice; register each saga once"
            : "sagas \(first) and \(second) both have the saga type '\(sagaType)', which keys their stored state "
                + "(by default a saga's type is its Swift name, without module or enclosing types): give one of "
                + "them its own `static var sagaType`"
    }

    /// The saga types hosted.
    public var sagaTypes: [String] { sagas.map { $0.sagaType } }

    func sagaRunners(for type: String) -> [any SagaRunner] {
        (sagaTypesByMessage[type] ?? []).map { sagas[$0] }
    }

    func statelessHandlers(for type: String) -> [Stateless] {
        stateless[type] ?? []
    }

    func sagaRunner(named sagaType: String) -> (any SagaRunner)? {
        sagas.first { $0.sagaType == sagaType }
    }
}
