public import Foundation
public import Sagas

/// What one delivery did: the sagas it reached, the messages it emitted and the timeouts it asked for.
///
/// Only a delivery that committed has effects: a duplicate, a deferred or a dead-lettered delivery
/// emitted nothing and stored nothing (its `sagas` still say why).
public struct DeliveryResult: Sendable, Equatable, EmittedMessages, CustomStringConvertible {
    public enum Disposition: Sendable, Equatable {
        /// Processed and committed (including "no saga instance, discarded").
        case handled
        /// The inbox had the message id already: nothing ran.
        case duplicate
        /// A saga's `NotFoundPolicy.retryLater` applied: rolled back; the host redelivers the same message
        /// (same id) at `retryAt` when time advances. `retry` counts from 1.
        case deferred(retryAt: Date, retry: Int)
        /// A saga's `NotFoundPolicy.errorQueue` applied (or `retryLater` ran out of attempts, or a timeout
        /// fell due that its saga has no route for): rolled back and recorded in `SagaTestHost.deadLetters`.
        case deadLettered(reason: String)
    }

    /// The message as delivered (for a timeout: `TimeoutRequest.asIncomingMessage()`).
    public let message: IncomingMessage
    /// The virtual time of the delivery.
    public let deliveredAt: Date
    public let disposition: Disposition
    /// What each saga did, in registration order. A saga that found the message not for it (a timeout of
    /// another saga, an absent `Correlation.optionalProperty`) is absent.
    public let sagas: [SagaInvocation]
    /// Everything emitted, in outbox order: stateless handlers first, then sagas. Empty unless committed.
    public let emitted: [OutgoingMessage]
    /// Timeouts requested (and stored). Empty unless committed.
    public let timeoutsRequested: [TimeoutRequest]

    public init(message: IncomingMessage, deliveredAt: Date, disposition: Disposition, sagas: [SagaInvocation],
                emitted: [OutgoingMessage], timeoutsRequested: [TimeoutRequest]) {
        self.message = message
        self.deliveredAt = deliveredAt
        self.disposition = disposition
        self.sagas = sagas
        self.emitted = emitted
        self.timeoutsRequested = timeoutsRequested
    }

    public var isDuplicate: Bool { disposition == .duplicate }
    /// Whether the message was a timeout firing.
    public var isTimeout: Bool { message.timeoutTarget != nil }

    /// What saga `S` did with the message (its first invocation), nil if the message did not reach it.
    public func outcome<S: Saga>(of saga: S.Type) -> SagaInvocation.Outcome? {
        sagas.first { $0.saga.sagaType == S.sagaType }?.outcome
    }

    /// What the instance of `S` with `correlationId` did with the message.
    public func outcome<S: Saga>(of saga: S.Type, correlationId: String) -> SagaInvocation.Outcome? {
        sagas.first { $0.saga == SagaInstanceKey(sagaType: S.sagaType, correlationId: correlationId) }?.outcome
    }

    /// The not-found policies that applied, by saga instance.
    public var notFound: [(saga: SagaInstanceKey, policy: NotFoundPolicy)] {
        sagas.compactMap {
            if case .notFound(let policy) = $0.outcome { ($0.saga, policy) } else { nil }
        }
    }

    /// The delivery and what each saga did with it, one line each.
    public var outcomeListing: String? { outcomeLines.joined(separator: "\n") }

    var outcomeLines: [String] {
        ["delivery of \(message.type) [id \(message.messageId)] at \(deliveredAt): \(disposition)"]
            + sagas.map { "  saga \($0.saga): \(Self.text($0.outcome))" }
    }

    /// `notFound(discard)`: Swift's own rendering of the policy, `notFound(Sagas.NotFoundPolicy.discard)`,
    /// buried the one word that mattered.
    static func text(_ outcome: SagaInvocation.Outcome) -> String {
        guard case .notFound(let policy) = outcome else { return "\(outcome)" }
        return switch policy {
        case .discard: "notFound(discard)"
        case .errorQueue: "notFound(errorQueue)"
        case .retryLater(let attempts, let delay): "notFound(retryLater(attempts: \(attempts), delay: \(delay)))"
        }
    }

    public var description: String {
        var lines = outcomeLines
        lines.append(contentsOf: emitted.map { "  " + $0.summary })
        for timeout in timeoutsRequested {
            lines.append("  timeout \(timeout.type) due \(timeout.dueAt) for \(timeout.saga)")
        }
        return lines.joined(separator: "\n")
    }
}

/// What advancing the virtual clock did: the due timeouts (and deferred retries) delivered, in due-time
/// order.
public struct TimeAdvanceResult: Sendable, Equatable, EmittedMessages, CustomStringConvertible {
    public let from: Date
    public let to: Date
    public let deliveries: [DeliveryResult]

    public init(from: Date, to: Date, deliveries: [DeliveryResult]) {
        self.from = from
        self.to = to
        self.deliveries = deliveries
    }

    public var emitted: [OutgoingMessage] { deliveries.flatMap(\.emitted) }
    /// The timeouts that fired, in order.
    public var firedTimeouts: [IncomingMessage] { deliveries.map(\.message).filter { $0.timeoutTarget != nil } }
    public var timeoutsRequested: [TimeoutRequest] { deliveries.flatMap(\.timeoutsRequested) }
    public var sagas: [SagaInvocation] { deliveries.flatMap(\.sagas) }

    /// The advance and what each delivery it made did, one line each.
    public var outcomeListing: String? {
        (["advanced from \(from) to \(to): \(deliveries.count) deliveries"] + deliveries.flatMap(\.outcomeLines))
            .joined(separator: "\n")
    }

    public var description: String {
        (["advanced from \(from) to \(to): \(deliveries.count) deliveries"] + deliveries.map(\.description))
            .joined(separator: "\n")
    }
}

/// A message the host did not process and would have moved to the endpoint's error queue.
public struct DeadLetter: Sendable, Equatable {
    public let message: IncomingMessage
    public let reason: String
    public let at: Date
}
