public import Foundation

/// Routes one incoming message to the stateless handlers and sagas that handle its type. Shared by the
/// endpoint and `SagaTesting`, so a saga behaves the same in a unit test as in production.
public struct MessageDispatcher: Sendable {
    public let registry: HandlerRegistry
    /// The endpoint's input queue: the default `reply_to` of sent commands.
    public let endpointAddress: String

    public init(registry: HandlerRegistry, endpointAddress: String) {
        self.registry = registry
        self.endpointAddress = endpointAddress
    }

    /// Throws `SagaError.noHandler` when nothing in this endpoint handles the message's type.
    public func checkHandled(_ incoming: IncomingMessage) throws {
        // A timeout type comes only from the store; published by someone else it has no handler. A timeout
        // reaches only its own saga: another saga's or a stateless handler of its type does not take it, so
        // without a route in its saga it has none (the endpoint error-queues it as `NoHandler`).
        let handled = if let target = incoming.timeoutTarget {
            registry.sagaHandles(type: incoming.type, sagaType: target.sagaType)
        } else {
            registry.handlesFromBroker(type: incoming.type)
        }
        guard handled else { throw SagaError.noHandler(type: incoming.type) }
    }

    /// Whether the message needs stateless handlers (which may be async and run before the transaction).
    public func hasStatelessHandlers(for incoming: IncomingMessage) -> Bool {
        incoming.timeoutTarget == nil && !registry.statelessHandlers(for: incoming.type).isEmpty
    }

    /// Runs the stateless handlers for the message and returns what they emitted. With `tracing`, each
    /// runs in a "handle" span whose context its emitted messages carry.
    public func runStatelessHandlers(_ incoming: IncomingMessage, now: Date,
                                     tracing: MessageTracing? = nil) async throws -> [OutgoingMessage] {
        guard incoming.timeoutTarget == nil else { return [] }
        var outgoing: [OutgoingMessage] = []
        for handler in registry.statelessHandlers(for: incoming.type) {
            let context = HandlerContext(incoming: incoming, now: now, endpointAddress: endpointAddress,
                                         handlerKey: handler.key, saga: nil, originator: nil)
            try await HandlerSpan.run(tracing, handler: incoming.type, context: context) {
                try await handler.handle(incoming, context)
            }
            outgoing += context.outgoing
        }
        return outgoing
    }

    /// Runs every saga that handles the message, reading and writing instances through `persistence`
    /// (inside the caller's transaction). With `tracing`, each saga's handler runs in a "handle" span.
    public func dispatchToSagas(_ incoming: IncomingMessage, persistence: any SagaPersistence,
                                now: Date, tracing: MessageTracing? = nil) throws -> [SagaInvocation] {
        try registry.sagaRunners(for: incoming.type).compactMap {
            try $0.run(incoming, persistence: persistence, now: now, endpointAddress: endpointAddress,
                       tracing: tracing)
        }
    }

    /// Finds the saga instances the message goes to without touching any state (it decodes the body to
    /// find correlation ids), so that their states can be read in one go before the handlers run.
    public func resolveSagas(_ incoming: IncomingMessage) -> SagaDispatchPlan {
        SagaDispatchPlan(steps: registry.sagaRunners(for: incoming.type).map { runner in
            SagaDispatchPlan.Step(runner: runner, resolved: Result { try runner.resolve(incoming) })
        })
    }

    /// Runs a resolved message exactly as `dispatchToSagas(_:persistence:now:tracing:)` would: same
    /// order, same errors (a saga whose resolution failed throws when its turn comes).
    public func dispatchToSagas(_ plan: SagaDispatchPlan, incoming: IncomingMessage,
                                persistence: any SagaPersistence, now: Date,
                                tracing: MessageTracing? = nil) throws -> [SagaInvocation] {
        try plan.steps.compactMap { step in
            guard let resolved = try step.resolved.get() else { return nil }
            return try step.runner.run(resolved, incoming: incoming, persistence: persistence, now: now,
                                       endpointAddress: endpointAddress, tracing: tracing)
        }
    }
}

/// The saga instances one message goes to, found by `MessageDispatcher.resolveSagas`.
public struct SagaDispatchPlan: Sendable {
    struct Step: Sendable {
        var runner: any SagaRunner
        var resolved: Result<ResolvedSagaMessage?, any Error>
    }

    var steps: [Step]

    /// The instances whose states the handlers will read (those that resolved).
    public var keys: [SagaInstanceKey] {
        steps.compactMap { try? $0.resolved.get()?.key }
    }
}
