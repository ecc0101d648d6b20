/// The messages a saga handles, collected by `Saga.define`.
public struct SagaDefinition<S: Saga>: Sendable {
    // Routes take the message decoded once by `decode`: correlating and handling a message used to
    // decode its JSON body twice, a large share of the CPU a message costs.
    typealias Start = @Sendable (any Message, HandlerContext) throws -> S
    typealias Handle = @Sendable (inout S, any Message, HandlerContext) throws -> Void
    typealias NotFoundHandler = @Sendable (any Message, HandlerContext) throws -> Void

    struct Route: Sendable {
        var messageType: String
        /// Decodes the body into the route's message type (`SagaError.malformedMessage` when it cannot).
        var decode: @Sendable (IncomingMessage) throws -> any Message
        /// Returns nil when the message is not for this saga (an absent optional correlation value).
        var correlation: (@Sendable (any Message, IncomingMessage) throws -> String?)?
        var start: Start?
        var handle: Handle?
        var notFound: NotFoundPolicy
        /// Runs instead of `notFound` when set.
        var whenNotFound: NotFoundHandler? = nil
        var isTimeout: Bool
        /// The Swift type `M` and how it was declared, to name both sides of a conflict.
        var swiftType: ObjectIdentifier
        var swiftName: String
        var declaration: String
        /// `M` keeps the default `messageType`, its Swift name (see `HandlerRegistry.claim`).
        var defaultNamed: Bool
    }

    private(set) var routes: [String: Route] = [:]

    public init() {}

    /// `M` starts a new instance when no instance with its correlation id exists. `start` returns the
    /// initial state and may emit messages. When an instance exists already (a second start message with
    /// another message id), `whenExisting` runs on it; by default the message is ignored.
    public mutating func startedBy<M: Message>(
        _ type: M.Type, correlatedBy correlation: Correlation<M>,
        whenExisting: (@Sendable (inout S, M, HandlerContext) throws -> Void)? = nil,
        start: @escaping @Sendable (M, HandlerContext) throws -> S
    ) {
        var existing: Handle?
        if let whenExisting {
            existing = { (state: inout S, message: any Message, context: HandlerContext) throws in
                try whenExisting(&state, message as! M, context)
            }
        }
        add(Route(
            messageType: M.messageType, decode: Self.decoder(type),
            correlation: Self.correlate(correlation),
            start: { message, context in try start(message as! M, context) },
            handle: existing, notFound: .discard, isTimeout: false,
            swiftType: ObjectIdentifier(M.self), swiftName: String(reflecting: M.self), declaration: "startedBy",
            defaultNamed: M.messageType == String(describing: M.self)
        ))
    }

    /// `M` is handled by the live instance it correlates to. When there is none, `whenNotFound` decides.
    public mutating func handles<M: Message>(
        _ type: M.Type, correlatedBy correlation: Correlation<M>, whenNotFound: NotFoundPolicy = .discard,
        _ handle: @escaping @Sendable (inout S, M, HandlerContext) throws -> Void
    ) {
        add(Route(
            messageType: M.messageType, decode: Self.decoder(type),
            correlation: Self.correlate(correlation),
            start: nil,
            handle: { state, message, context in try handle(&state, message as! M, context) },
            notFound: whenNotFound, isTimeout: false,
            swiftType: ObjectIdentifier(M.self), swiftName: String(reflecting: M.self), declaration: "handles",
            defaultNamed: M.messageType == String(describing: M.self)
        ))
    }

    /// `M` is handled by the live instance it correlates to. When there is none, `whenNotFound` runs
    /// instead (NServiceBus's `IHandleSagaNotFound`, MassTransit's `OnMissingInstance(...ExecuteAsync)`):
    /// typically a reply that the process is unknown or over. It runs like a stateless handler, in the same
    /// transaction as the message's inbox record: it may `send`, `publish` and `reply` (no instance exists,
    /// so `requestTimeout`, `markComplete` and `replyToOriginator` throw `SagaError.notInSaga`); if it
    /// throws, the message is retried and goes to the error queue like any failing message.
    public mutating func handles<M: Message>(
        _ type: M.Type, correlatedBy correlation: Correlation<M>,
        whenNotFound: @escaping @Sendable (M, HandlerContext) throws -> Void,
        _ handle: @escaping @Sendable (inout S, M, HandlerContext) throws -> Void
    ) {
        handles(type, correlatedBy: correlation, whenNotFound: .discard, handle)
        routes[M.messageType]!.whenNotFound = { message, context in try whenNotFound(message as! M, context) }
    }

    /// `M` is a timeout this saga requests with `context.requestTimeout(after:_:)`; it is delivered only
    /// to the instance that asked for it, and never after that instance completed.
    public mutating func handlesTimeout<M: Message>(
        _ type: M.Type, _ handle: @escaping @Sendable (inout S, M, HandlerContext) throws -> Void
    ) {
        add(Route(
            messageType: M.messageType, decode: Self.decoder(type), correlation: nil, start: nil,
            handle: { state, message, context in try handle(&state, message as! M, context) },
            notFound: .discard, isTimeout: true,
            swiftType: ObjectIdentifier(M.self), swiftName: String(reflecting: M.self), declaration: "handlesTimeout",
            defaultNamed: M.messageType == String(describing: M.self)
        ))
    }

    /// One route per message type. A second declaration used to replace the first without a word (a
    /// `startedBy` followed by `handles` for the same type lost the start: no instance was ever created),
    /// so it stops the program where the saga is defined, like any other programming error.
    private mutating func add(_ route: Route) {
        if let first = routes[route.messageType] {
            fatalError(Self.duplicateRouteMessage(first: first, second: route))
        }
        routes[route.messageType] = route
    }

    static func duplicateRouteMessage(first: Route, second: Route) -> String {
        var message = "saga \(S.sagaType) declares message type '\(second.messageType)' twice "
            + "(\(first.declaration)(\(first.swiftName).self) and \(second.declaration)(\(second.swiftName).self)); "
            + "a saga has one route per message type"
        let declarations = Set([first.declaration, second.declaration])
        if declarations == ["startedBy", "handles"] {
            message += ": to handle a start message that finds its instance alive, pass `whenExisting:` to `startedBy`"
        } else if declarations.contains("handlesTimeout") {
            message += ": a `handles` route takes timeouts too (`requestTimeout` delivers to it), so drop `handlesTimeout`"
        }
        return message
    }

    // The casts in the routes cannot fail: a route's `decode` produces its own `M`.
    private static func decoder<M: Message>(_ type: M.Type) -> @Sendable (IncomingMessage) throws -> any Message {
        { incoming in try MessageCoding.decode(type, from: incoming.body, messageType: incoming.type) }
    }

    private static func correlate<M: Message>(
        _ correlation: Correlation<M>
    ) -> @Sendable (any Message, IncomingMessage) throws -> String? {
        { decoded, incoming in
            guard let id = correlation.extract(decoded as! M, incoming), !id.isEmpty else {
                if correlation.absentValueMeansNotForThisSaga { return nil }
                throw SagaError.missingCorrelationId(sagaType: S.sagaType, messageType: incoming.type,
                                                    correlation: correlation.label)
            }
            return id
        }
    }
}

extension SagaDefinition {
    /// Convenience: correlate by a key path of the message.
    public mutating func startedBy<M: Message>(
        _ type: M.Type, correlatedBy keyPath: any KeyPath<M, String> & Sendable,
        whenExisting: (@Sendable (inout S, M, HandlerContext) throws -> Void)? = nil,
        start: @escaping @Sendable (M, HandlerContext) throws -> S
    ) {
        startedBy(type, correlatedBy: .property(keyPath), whenExisting: whenExisting, start: start)
    }

    /// Convenience: correlate by a key path of the message.
    public mutating func handles<M: Message>(
        _ type: M.Type, correlatedBy keyPath: any KeyPath<M, String> & Sendable,
        whenNotFound: NotFoundPolicy = .discard,
        _ handle: @escaping @Sendable (inout S, M, HandlerContext) throws -> Void
    ) {
        handles(type, correlatedBy: .property(keyPath), whenNotFound: whenNotFound, handle)
    }

    /// Convenience: correlate by a key path of the message; `whenNotFound` runs when no instance exists.
    public mutating func handles<M: Message>(
        _ type: M.Type, correlatedBy keyPath: any KeyPath<M, String> & Sendable,
        whenNotFound: @escaping @Sendable (M, HandlerContext) throws -> Void,
        _ handle: @escaping @Sendable (inout S, M, HandlerContext) throws -> Void
    ) {
        handles(type, correlatedBy: .property(keyPath), whenNotFound: whenNotFound, handle)
    }
}
