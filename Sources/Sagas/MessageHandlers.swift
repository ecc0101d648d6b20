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
    /// Each saga type's timeout message types.
    private(set) var timeoutTypesBySaga: [String: Set<String>] = [:]
    /// The Swift types behind each message type name, to catch two types that share a name by accident.
    private var swiftTypes: [String: [MessageSwiftType]] = [:]

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
        if S.sagaType.isEmpty { fatalError(Self.emptySagaTypeMessage(String(reflecting: S.self))) }
        for route in definition.routes.values where route.messageType.isEmpty {
            fatalError(Self.emptyMessageTypeMessage(route.swiftName))
        }
        // The saga type keys the stored state: two sagas under one name would read each other's.
        if let other = sagas.first(where: { $0.sagaType == S.sagaType }) {
            fatalError(Self.duplicateSagaMessage(S.sagaType, first: other.swiftName, second: String(reflecting: S.self)))
        }
        // A timeout type reaches only the saga instance that asked for it, decoded by that saga's own
        // route: two sagas may each have a `Timeout` of their own.
        timeoutTypesBySaga[S.sagaType] = Set(definition.routes.values.filter(\.isTimeout).map(\.messageType))
        for route in definition.routes.values where !route.isTimeout {
            claim(route.messageType, MessageSwiftType(id: route.swiftType, name: route.swiftName,
                                                      defaultNamed: route.defaultNamed))
            brokerTypes.insert(route.messageType)
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
        // or in another order, does not change them. The prefix keeps it apart from saga types (a saga's
        // key), or a saga named like the message type would emit the same ids.
        let earlier = stateless[M.messageType]?.count ?? 0
        let key = "handler:" + M.messageType + (earlier == 0 ? "" : "#\(earlier + 1)")
        stateless[M.messageType, default: []].append(Stateless(key: key) { incoming, context in
            let message = try MessageCoding.decode(type, from: incoming.body, messageType: incoming.type)
            try await handler(message, context)
        })
    }

    /// The message types some saga or handler handles when they come from the broker (a saga's timeout
    /// types only come from its store).
    public var handledTypes: Set<String> { brokerTypes }

    public func handles(type: String) -> Bool {
        sagaTypesByMessage[type] != nil || stateless[type] != nil
    }

    /// Whether the saga registered as `sagaType` handles messages of this type as one of its timeouts:
    /// where a replayed timeout that names its saga instance can go.
    public func handlesTimeout(type: String, bySaga sagaType: String) -> Bool {
        timeoutTypesBySaga[sagaType]?.contains(type) ?? false
    }

    /// Whether the saga registered as `sagaType` has a route for messages of this type: where a timeout it
    /// stored can go (`requestTimeout` takes any message, not only the types declared `handlesTimeout`).
    public func sagaHandles(type: String, sagaType: String) -> Bool {
        sagaTypesByMessage[type]?.contains { sagas[$0].sagaType == sagaType } ?? false
    }

    /// Whether a message of this type consumed from a queue has a handler. A saga's timeout type alone
    /// does not count: timeouts come from the saga's store, and one published from outside has no saga
    /// instance to go to.
    public func handlesFromBroker(type: String) -> Bool {
        brokerTypes.contains(type)
    }

    /// Two different Swift types under one default name (e.g. `Billing.Placed` and `Shipping.Placed`,
    /// both "Placed") would each be decoded as the other; that stops the program where it is registered
    /// (`fatalError`, whose message shows in release builds too). A `messageType` two types share that is
    /// not both their Swift names is a choice (two views of one message) and allowed; one that equals
    /// both Swift names cannot be told from the default and counts as it.
    private mutating func claim(_ messageType: String, _ type: MessageSwiftType) {
        if messageType.isEmpty { fatalError(Self.emptyMessageTypeMessage(type.name)) }
        let known = swiftTypes[messageType, default: []]
        guard !known.contains(where: { $0.id == type.id }) else { return }
        if type.defaultNamed, let other = known.first(where: \.defaultNamed) {
            fatalError(Self.sharedNameMessage(messageType, first: other.name, second: type.name))
        }
        swiftTypes[messageType, default: []].append(type)
    }

    // An empty name (a `static var` read from an unset setting, say) registered without a word: messages
    // are routed by their AMQP `type`, and the endpoint error-queues one without a type unread, so its
    // handler never ran and a saga's commands of that type were refused by their receivers.
    static func emptyMessageTypeMessage(_ swiftName: String) -> String {
        "message type \(swiftName) has an empty `messageType`: messages are routed by their AMQP `type`, and one "
            + "without a type goes to the error queue unread; give it a name, or leave the default (its Swift name)"
    }

    // The saga type keys the stored state and the ids of the messages a saga emits.
    static func emptySagaTypeMessage(_ swiftName: String) -> String {
        "saga \(swiftName) has an empty `sagaType`, which keys its stored state and the ids of the messages it "
            + "emits: give it a name, or leave the default (its Swift name)"
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

    /// The message types stateless handlers handle, sorted.
    public var statelessMessageTypes: [String] { stateless.keys.sorted() }

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
