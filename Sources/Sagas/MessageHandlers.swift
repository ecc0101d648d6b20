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
        let key = "h\(stateless.values.reduce(0) { $0 + $1.count } + 1)"
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
