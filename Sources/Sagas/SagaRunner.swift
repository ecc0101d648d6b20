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
        /// A timeout whose saga has completed meanwhile: dropped.
        case timeoutForGoneSaga
    }

    public var saga: SagaInstanceKey
    public var outcome: Outcome
    public var outgoing: [OutgoingMessage]
    public var timeouts: [TimeoutRequest]
}

/// Runs one saga type's handlers against stored instances; type-erased so a registry can hold many.
protocol SagaRunner: Sendable {
    var sagaType: String { get }
    var messageTypes: [String] { get }
    /// Nil when the message is not for this saga (a timeout of another saga type, or a message whose
    /// `Correlation.optionalProperty` value is absent).
    func run(_ incoming: IncomingMessage, persistence: any SagaPersistence, now: Date,
             endpointAddress: String, tracing: MessageTracing?) throws -> SagaInvocation?
}

struct TypedSagaRunner<S: Saga>: SagaRunner {
    let definition: SagaDefinition<S>

    init(definition: SagaDefinition<S>) {
        self.definition = definition
    }

    var sagaType: String { S.sagaType }
    var messageTypes: [String] { Array(definition.routes.keys) }

    func run(_ incoming: IncomingMessage, persistence: any SagaPersistence, now: Date,
             endpointAddress: String, tracing: MessageTracing?) throws -> SagaInvocation? {
        guard let route = definition.routes[incoming.type] else { return nil }
        // Decoded at most once, and only when needed: a timeout for a gone saga is never decoded.
        var decoded: (any Message)?
        func message() throws -> any Message {
            if let decoded { return decoded }
            let message = try route.decode(incoming)
            decoded = message
            return message
        }
        let key: SagaInstanceKey
        if let target = incoming.timeoutTarget {
            // A timeout goes only to the instance that requested it.
            guard target.sagaType == S.sagaType else { return nil }
            key = target
        } else if route.isTimeout {
            // Timeout types are internal; one arriving from the broker has no instance to go to.
            return nil
        } else {
            // Nil: an optional correlation value is absent, so the message is not for this saga.
            guard let correlationId = try route.correlation!(try message(), incoming) else { return nil }
            key = SagaInstanceKey(sagaType: S.sagaType, correlationId: correlationId)
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
            return SagaInvocation(saga: key, outcome: .notFound(route.notFound), outgoing: [], timeouts: [])
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
