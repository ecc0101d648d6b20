import AMQPTransport

/// How an endpoint connects, what it consumes, where it keeps state, and how it treats failures.
public struct EndpointConfiguration: Sendable {
    /// The broker, as an AMQP URI (the password is never logged).
    public var amqpURL: String
    /// The queues to consume. The first is the endpoint's address: the default `reply_to` of the
    /// commands its sagas send.
    public var inputQueues: [String]
    /// The SQLite file holding saga state, the inbox, the outbox and timeouts.
    public var databasePath: String
    /// Exchanges, queues and bindings to declare at start and again whenever a broker connection is
    /// re-established (see `EndpointTopology`); nil: only the input and error queues, and only those
    /// missing at start.
    public var topology: EndpointTopology?
    /// Unacknowledged deliveries in flight per input queue. At full load three batches are in the
    /// pipeline (one running its handlers, one committing, one publishing and awaiting its confirms) and
    /// the next one fills meanwhile, so it is best 4 × `batchSize`: with 3 × many batches came short and
    /// the endpoint moved 6–16% fewer messages; with 6 × it moved a few percent more than with 4 ×, but
    /// the p99 latency near saturation grew. At least 1: AMQP's 0 ("no limit") is refused at start.
    public var prefetch: UInt16 = 400
    /// Deliveries processed in one SQLite transaction and acknowledged together (group commit).
    public var batchSize: Int = 100
    /// Run saga handlers before the batch's transaction, against states read on a second SQLite connection
    /// while the previous batch commits (the transaction keeps a result only if what it read is still
    /// current). False runs them inside the transaction, on the SQLite thread.
    public var handlersAheadOfCommit: Bool = true
    /// How many messages of a batch run their stateless handlers at once. They are where an endpoint waits
    /// for the outside world (an HTTP API): run one after another, a 200 ms call held it to five messages a
    /// second. 1 runs them in delivery order, one at a time (as does anything below 1).
    public var statelessHandlerConcurrency: Int = 16
    /// Names the broker connections (`<name>-consume`, `<name>-publish`) in the management UI.
    public var connectionName: String = "saga-endpoint"
    /// A failing message is retried this many times at once before delayed retries: in the process (its
    /// delivery kept unacknowledged), not handed back to its queue, which a quorum queue would count.
    public var immediateRetries: Int = 3
    /// Then retried this many times after these delays (kept durably in SQLite), then sent to the error
    /// queue.
    public var delayedRetries: [Duration] = [.seconds(1), .seconds(10), .seconds(60)]
    /// Besides errors conforming to `UnrecoverableError`, the handler errors no retry can fix (e.g. a
    /// library's validation error): their messages go to the error queue at once, without retries.
    public var isUnrecoverable: @Sendable (any Error) -> Bool = { _ in false }
    /// A message delivered more often than this without its processing completing (it crashes the
    /// process rather than throwing) goes to the error queue instead of crash-looping the endpoint.
    public var maxDeliveries: Int = 10
    /// A delivery kept in the process to be processed again (a database that stays locked or full, an error
    /// queue that keeps refusing its copy) is handed back to its queue once it has been kept this long, to be
    /// delivered anew. Unacknowledged longer than the broker's `consumer_timeout` (30 min by default), it made
    /// the broker close the consumer's channel, handing back every delivery on it. Keep it below that timeout.
    public var maximumHold: Duration = .seconds(15 * 60)
    /// Larger bodies go to the error queue unread.
    public var maxBodyBytes: Int = 1 << 20
    /// Inbox rows are kept this long to recognise redeliveries and duplicates.
    public var deduplicationWindow: Duration = .seconds(7 * 24 * 3600)
    /// Dispatched outbox rows are kept this long (for inspection) before they are removed.
    public var outboxRetention: Duration = .seconds(3600)
    /// SQLite `synchronous=FULL` (the default) makes every commit durable across power loss.
    public var durableCommits: Bool = true
    /// How often due timeouts are looked for.
    public var timeoutPollInterval: Duration = .milliseconds(200)
    /// How often housekeeping removes inbox rows older than `deduplicationWindow` and dispatched outbox
    /// rows older than `outboxRetention`.
    public var housekeepingInterval: Duration = .seconds(60)
    /// Outbox rows still unconfirmed this long after they were written (a crash between commit and
    /// confirm, a message the broker returned or refused) are published again by housekeeping.
    public var outboxRedispatchDelay: Duration = .seconds(10)
    /// An outgoing command or reply the broker keeps returning (no queue of that name: a requester gone
    /// with its reply queue, a queue not declared) for this long, as this process saw it (its clock starts
    /// at its first return, again after a restart), goes to the endpoint's error queue (`x-error-type: UnroutableMessage`, `x-original-queue` its queue, so a replay sends it
    /// there once the queue exists). Meanwhile housekeeping sends it again every `outboxRedispatchDelay`;
    /// its incoming message is acknowledged once its transaction committed (it is safe in the outbox).
    public var unroutableTimeout: Duration = .seconds(300)
    /// An outgoing message the broker keeps refusing (basic.nack: a queue it routes to is full under
    /// `overflow: reject-publish`) for this long, as this process saw it (its clock starts at the first
    /// refused re-send, again after a restart), goes to the endpoint's error queue (`x-error-type:
    /// RefusedMessage`; a command or reply with `x-original-queue` its queue, an event with
    /// `x-original-exchange` and `x-original-routing-key`), so that a replay sends it there once the queue
    /// has room. Meanwhile housekeeping sends it again every `outboxRedispatchDelay`. Without a limit, a
    /// command to a queue that stayed full was sent again for as long as the endpoint ran, and nobody saw
    /// it in an error queue. An hour: a consumer that is catching up empties its queue long before that.
    public var refusedTimeout: Duration = .seconds(3600)
    /// How long a transaction waits for another process's write lock on the SQLite file before the
    /// batch is retried (a busy database is a transient failure: the messages are redelivered).
    public var databaseBusyTimeout: Duration = .seconds(5)

    public init(amqpURL: String, inputQueues: [String], databasePath: String) {
        self.amqpURL = amqpURL
        self.inputQueues = inputQueues
        self.databasePath = databasePath
    }

    /// The endpoint's own address: the first input queue.
    public var endpointAddress: String { inputQueues.first ?? "" }

    /// Where messages that cannot be processed from `queue` go, with the reason in their headers.
    public func errorQueue(for queue: String) -> String { queue + Self.errorQueueSuffix }

    /// What an input queue's name gets to name its error queue: `transfers` → `transfers.error`.
    public static let errorQueueSuffix = ".error"

    /// Whether `name` is named as an endpoint names error queues (an input queue's name and the suffix).
    public static func isErrorQueue(_ name: String) -> Bool {
        name.count > errorQueueSuffix.count && name.hasSuffix(errorQueueSuffix)
    }
}

extension EndpointConfiguration: CustomStringConvertible, CustomDebugStringConvertible {
    /// Every setting, with the password of `amqpURL` hidden: a host app that logs its configuration
    /// must not log the broker's password.
    public var description: String {
        var shown = self
        // As the endpoint logs it (no query: a key file's path stays out too); a URL that does not parse
        // keeps its text with the password hidden.
        shown.amqpURL = (try? AMQPConfiguration(url: amqpURL))?.redactedURL ?? AMQPConfiguration.redact(amqpURL)
        let settings = Mirror(reflecting: shown).children.map { "\($0.label ?? "_"): \(String(reflecting: $0.value))" }
        return "EndpointConfiguration(" + settings.joined(separator: ", ") + ")"
    }

    public var debugDescription: String { description }
}
