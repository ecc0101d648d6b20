import SagaStore
import Sagas

/// One message to process in a batch transaction.
struct WorkItem: Sendable {
    var incoming: IncomingMessage
    /// What the stateless handlers emitted (they ran before the transaction: they may be async).
    var statelessOutgoing: [OutgoingMessage] = []
    /// The timeouts-table row this message came from (a saga timeout or a delayed retry), deleted in the
    /// same transaction.
    var timeoutRow: TimeoutKey?
    /// When the message should instead be parked for a delayed retry: the row to schedule.
    var deferral: TimeoutRecord?
    /// The message came redelivered, so it has a delivery count to forget once it is processed.
    var wasRedelivered = false
    /// The message's span context for its handlers' spans; nil without a tracer.
    var tracing: MessageTracing?
    /// What its sagas did when they ran before the transaction; nil when they did not (the transaction
    /// runs them).
    var speculation: SagaSpeculation?
}

/// What the transaction did with one message.
enum WorkResult: Sendable {
    /// Processed now: these outbox rows are to be published.
    case processed(outbox: [OutboxRecord], invocations: [SagaInvocation])
    /// Seen before: these outbox rows of the first processing were never confirmed; publish again.
    case duplicate(undispatched: [OutboxRecord])
    /// Parked in the timeouts table for a delayed retry; the delivery can be acknowledged.
    case deferred
    /// A due row that was gone when its turn came: its saga completed (which cancels its timeouts) or
    /// another process handled it. Nothing was done; in particular no handler of a newer instance under
    /// the same correlation id received the old instance's timeout.
    case withdrawn
    /// A saga handles the message but found no instance, and its policy is not `.discard`.
    case notFound(NotFoundPolicy, saga: SagaInstanceKey)
    /// Rolled back.
    case failed(any Error)
}

/// Thrown inside a message's savepoint to roll back a not-found message that is not simply discarded.
struct NotFound: Error {
    var policy: NotFoundPolicy
    var saga: SagaInstanceKey
}
