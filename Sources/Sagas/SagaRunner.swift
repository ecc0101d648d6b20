import Foundation

/// What one saga did with one message.
public struct SagaInvocation: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// A start message created the instance.
        case started
        /// A start message created the instance and completed it in the same step.
        case startedAndCompleted
        case updated
        /// The saga completed: its state was deleted and its timeouts cancelled.
        case completed
        /// A start message found an instance already and the saga declared no `whenExisting`.
        case ignoredExistingStart
        /// No live instance; the policy says what the endpoint does with the message.
        case notFound(NotFoundPolicy)
        /// No live instance; the route's `whenNotFound` handler ran instead (its messages are in `outgoing`).
        case notFoundHandled
        /// A timeout whose saga has completed meanwhile: dropped.
        case timeoutForGoneSaga
    }

    public var saga: SagaInstanceKey
    public var outcome: Outcome
    public var outgoing: [OutgoingMessage]
    public var timeouts: [TimeoutRequest]
}

/// A message matched to the saga instance it goes to, before any state is read: resolving it decodes
/// the body (to find the correlation id), and running it reuses that decoding.
struct ResolvedSagaMessage: Sendable {
    var key: SagaInstanceKey
    /// Nil until needed: a timeout's instance is known without decoding its body.
    var message: (any Message)?
}

/// Runs one saga type's handlers against stored instances; type-erased so a registry can hold many.
protocol SagaRunner: Sendable {
    var sagaType: String { get }
    /// The Swift type's full name, for messages about it.
    var swiftName: String { get }
    var messageTypes: [String] { get }
    /// The instance the message goes to; nil when the message is not for this saga (a timeout of another
    /// saga type, or a message whose `Correlation.optionalProperty` value is absent).
    func resolve(_ incoming: IncomingMessage) throws -> ResolvedSagaMessage?
    /// Loads the instance through `persistence`, runs the handler and writes the result back.
    func run(_ resolved: ResolvedSagaMessage, incoming: IncomingMessage, persistence: any SagaPersistence,
             now: Date, endpointAddress: String, tracing: MessageTracing?) throws -> SagaInvocation
}

extension SagaRunner {
    func run(_ incoming: IncomingMessage, persistence: any SagaPersistence, now: Date,
             endpointAddress: String, tracing: MessageTracing?) throws -> SagaInvocation? {
        guard let resolved = try resolve(incoming) else { return nil }
        return try run(resolved, incoming: incoming, persistence: persistence, now: now,
                       endpointAddress: endpointAddress, tracing: tracing)
    }
}

struct TypedSagaRunner<S: Saga>: SagaRunner {
    let definition: SagaDefinition<S>

    init(definition: SagaDefinition<S>) {
        self.definition = definition
    }

    var sagaType: String { S.sagaType }
    var swiftName: String { String(reflecting: S.self) }
    var messageTypes: [String] { Array(definition.routes.keys) }

    func resolve(_ incoming: IncomingMessage) throws -> ResolvedSagaMessage? {
        guard let route = definition.routes[incoming.type] else { return nil }
        if let target = incoming.timeoutTarget {
            // A timeout goes only to the instance that requested it. Its body is decoded only when the
            // instance still exists: a timeout for a gone saga is never decoded.
            guard target.sagaType == S.sagaType else { return nil }
            return ResolvedSagaMessage(key: target, message: nil)
        }
        // Timeout types are internal; one arriving from the broker has no instance to go to.
        guard !route.isTimeout else { return nil }
        let message = try route.decode(incoming)
        // Nil: an optional correlation value is absent, so the message is not for this saga.
        guard let correlationId = try route.correlation!(message, incoming) else { return nil }
        return ResolvedSagaMessage(key: SagaInstanceKey(sagaType: S.sagaType, correlationId: correlationId),
                                   message: message)
    }

    func run(_ resolved: ResolvedSagaMessage, incoming: IncomingMessage, persistence: any SagaPersistence,
             now: Date, endpointAddress: String, tracing: MessageTracing?) throws -> SagaInvocation {
        let route = definition.routes[incoming.type]!
        let key = resolved.key
        func message() throws -> any Message {
            try resolved.message ?? route.decode(incoming)
        }

        guard let stored = try persistence.loadSaga(key) else {
            return try start(route, key: key, incoming: incoming, message: message, persistence: persistence,
                             now: now, endpointAddress: endpointAddress, tracing: tracing)
        }
        guard let handle = route.handle else {
            return SagaInvocation(saga: key, outcome: .ignoredExistingStart, outgoing: [], timeouts: [])
        }
        var state: S
        do {
            state = try MessageCoding.decoder.decode(S.self, from: stored.state)
        } catch {
            throw SagaError.corruptSagaState(saga: key, reason: "\(error)")
        }
        let context = HandlerContext(incoming: incoming, now: now, endpointAddress: endpointAddress,
                                     handlerKey: S.sagaType, saga: key, originator: stored.originator)
        try HandlerSpan.run(tracing, handler: S.sagaType, context: context) { try handle(&state, try message(), context) }
        if context.isCompleted {
            try persistence.deleteSaga(key, expectedVersion: stored.version)
            // A completed saga gets no timeouts, not even those asked for in its last step.
            return SagaInvocation(saga: key, outcome: .completed, outgoing: context.outgoing, timeouts: [])
        }
        var updated = stored
        updated.state = try MessageCoding.encode(state)
        updated.version = stored.version + 1
        updated.updatedAt = now
        try persistence.updateSaga(updated, expectedVersion: stored.version)
        return SagaInvocation(saga: key, outcome: .updated, outgoing: context.outgoing, timeouts: context.timeouts)
    }

    private func start(
        _ route: SagaDefinition<S>.Route, key: SagaInstanceKey, incoming: IncomingMessage,
        message: () throws -> any Message, persistence: any SagaPersistence, now: Date, endpointAddress: String,
        tracing: MessageTracing?
    ) throws -> SagaInvocation {
        if route.isTimeout || incoming.timeoutTarget != nil {
            return SagaInvocation(saga: key, outcome: .timeoutForGoneSaga, outgoing: [], timeouts: [])
        }
        guard let start = route.start else {
            guard let whenNotFound = route.whenNotFound else {
                return SagaInvocation(saga: key, outcome: .notFound(route.notFound), outgoing: [], timeouts: [])
            }
            // Like a stateless handler: it may send, publish and reply, but there is no instance to change,
            // complete or ask timeouts for. Its own key keeps its message ids apart from the saga's.
            let context = HandlerContext(incoming: incoming, now: now, endpointAddress: endpointAddress,
                                         handlerKey: S.sagaType + "#not-found", saga: nil, originator: nil)
            try HandlerSpan.run(tracing, handler: S.sagaType, context: context) { try whenNotFound(try message(), context) }
            return SagaInvocation(saga: key, outcome: .notFoundHandled, outgoing: context.outgoing, timeouts: [])
        }
        let originator = Originator(replyTo: incoming.replyTo, correlationId: incoming.correlationId)
        let context = HandlerContext(incoming: incoming, now: now, endpointAddress: endpointAddress,
                                     handlerKey: S.sagaType, saga: key, originator: originator)
        let state = try HandlerSpan.run(tracing, handler: S.sagaType, context: context) { try start(try message(), context) }
        if context.isCompleted {
            return SagaInvocation(saga: key, outcome: .startedAndCompleted, outgoing: context.outgoing, timeouts: [])
        }
        try persistence.insertSaga(StoredSaga(
            key: key, sagaId: MessageIdentity.randomUUID(), state: try MessageCoding.encode(state), version: 1,
            originator: originator, createdAt: now, updatedAt: now
        ))
        return SagaInvocation(saga: key, outcome: .started, outgoing: context.outgoing, timeouts: context.timeouts)
    }
}
