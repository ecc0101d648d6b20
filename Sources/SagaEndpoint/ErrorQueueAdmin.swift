public import AMQPTransport
public import Foundation

/// A message parked in an error queue, as an operator sees it.
public struct ErrorQueueEntry: Sendable {
    public var messageId: String
    public var type: String?
    public var originalQueue: String?
    /// Where an event was published (`x-original-exchange`, `x-original-routing-key`): a replay publishes
    /// it there, to every queue bound for it, rather than to `originalQueue`.
    public var originalExchange: String?
    public var originalRoutingKey: String?
    public var reason: String?
    public var errorType: String?
    public var attempts: Int?
    public var firstFailure: String?
    public var lastFailure: String?
    public var host: String?
    /// How often the message was replayed from an error queue before this copy (nil: never).
    public var replays: Int?
    public var properties: BasicProperties
    public var body: Data

    /// The exchange a replay publishes it to: an event's (`originalExchange`), or the default exchange
    /// (`""`) for a copy that names its queue; nil when it names neither (it cannot be replayed).
    public var replayExchange: String? {
        if let exchange = originalExchange, !exchange.isEmpty { return exchange }
        if let queue = originalQueue, !queue.isEmpty { return "" }
        return nil
    }

    init(_ message: AMQPMessage) {
        let headers = message.properties.headers ?? [:]
        messageId = message.properties.messageId ?? ""
        type = message.properties.type
        originalQueue = headers["x-original-queue"]?.stringValue
        originalExchange = headers[MessageTranslation.originalExchangeHeader]?.stringValue
        originalRoutingKey = headers[MessageTranslation.originalRoutingKeyHeader]?.stringValue
        reason = headers["x-error-reason"]?.stringValue
        errorType = headers["x-error-type"]?.stringValue
        attempts = headers["x-attempts"]?.intValue
        firstFailure = headers["x-first-failure"]?.stringValue
        lastFailure = headers["x-last-failure"]?.stringValue
        host = headers["x-host"]?.stringValue
        // Text: headers of a message parked for a delayed retry are kept as text.
        replays = headers[MessageTranslation.replaysHeader].flatMap { $0.intValue ?? $0.stringValue.flatMap { Int($0) } }
        properties = message.properties
        body = message.body
    }

    /// The message as it was before it failed: the error headers removed, the same message id. Without
    /// `user_id`, which the broker accepts only from the user it names (a copy made before the error copy
    /// dropped it stopped every replay by another user), and without `expiration` (an operator replays a
    /// message to have it processed, not to have it expire again on the way).
    public var original: AMQPMessage {
        var properties = properties
        properties.userId = nil
        properties.expiration = nil
        if var headers = properties.headers {
            for key in ErrorQueueAdmin.errorHeaders { headers.removeValue(forKey: key) }
            properties.headers = headers.isEmpty ? nil : headers
        }
        return AMQPMessage(body: body, properties: properties)
    }

    /// `original` as replay publishes it: it also carries how often it was replayed and when it first
    /// failed, so that a replayed message that fails again keeps its history in its next error-queue copy
    /// (before, `x-first-failure` and `x-attempts` started over, as if it had never failed).
    public var replayed: AMQPMessage {
        var message = original
        var headers = message.properties.headers ?? [:]
        // Saturating: the header comes with the original message, so any producer can set it (Int.max
        // made `+ 1` trap, ending `errors replay` and `replay --all` at that copy).
        let (next, overflow) = max(0, replays ?? 0).addingReportingOverflow(1)
        headers[MessageTranslation.replaysHeader] = .string(String(overflow ? Int.max : next))
        if let first = properties.headers?[MessageTranslation.replayedFirstFailureHeader]?.stringValue ?? firstFailure {
            headers[MessageTranslation.replayedFirstFailureHeader] = .string(first)
        }
        message.properties.headers = headers
        return message
    }
}

/// What `ErrorQueueAdmin.browse` saw.
public struct ErrorQueueListing: Sendable {
    /// The messages, oldest first; they stay in the queue.
    public var entries: [ErrorQueueEntry]
    /// Consumers the queue had when the listing started. Messages they hold unacknowledged are not
    /// listed (the broker delivers them to nobody else and does not count them as ready).
    public var otherConsumers: Int
    /// Messages the queue held (ready) when the listing started: more than `entries` when the limit cut the
    /// list, which a caller should say (the entries alone look like the whole queue).
    public var queued: Int
}

/// Reads, replays and purges an error queue.
///
/// Replay publishes the original message (same message id, error headers removed) to its original queue
/// and waits for the broker's confirm before it acknowledges the error-queue copy, so a crash during
/// replay loses nothing; a message replayed twice is dropped by the endpoint's inbox.
public struct ErrorQueueAdmin: Sendable {
    static let errorHeaders = ["x-error-reason", "x-error-type", "x-error-description", "x-original-queue",
                               "x-attempts", "x-first-failure", "x-last-failure", "x-host",
                               MessageTranslation.originalUserIdHeader, MessageTranslation.originalExpirationHeader,
                               MessageTranslation.originalExchangeHeader, MessageTranslation.originalRoutingKeyHeader]

    public let connection: AMQPConnection
    public let errorQueue: String

    public init(connection: AMQPConnection, errorQueue: String) {
        self.connection = connection
        self.errorQueue = errorQueue
    }

    /// Up to `limit` messages, oldest first, of those in the queue now; they stay in the queue.
    public func list(limit: Int = 100) async throws -> [ErrorQueueEntry] {
        try await browse(limit: limit).entries
    }

    /// `list`, and how many other consumers the queue had when it started: the messages they hold
    /// unacknowledged are not among the entries. Throws `ErrorQueueScanInterrupted` when the connection
    /// was lost meanwhile (some messages would be listed twice, others not at all).
    ///
    /// Without `bodies` the entries' bodies are left empty: a caller that shows no body (`errors list`)
    /// then holds none. Error copies of over-size messages keep their whole body, up to the broker's
    /// max_message_size, and `limit` of those kept for nothing took hundreds of MiB.
    ///
    /// With a `filter`, only the copies it matches are listed, up to `limit` of them: the pass goes on
    /// through the queue until it found that many (`queued` still counts the whole queue).
    public func browse(limit: Int = 100, bodies: Bool = true, filter: ErrorQueueFilter = .all) async throws -> ErrorQueueListing {
        var entries: [ErrorQueueEntry] = []
        let outcome = try await scan().run(limit: filter.isEmpty ? limit : .max, stoppedIsComplete: false) { delivery in
            var entry = ErrorQueueEntry(delivery.message)
            guard filter.matches(entry) else { return .keep }
            if !bodies { entry.body = Data() }
            entries.append(entry)
            return ErrorQueueScan.Step(disposition: .keep, stop: entries.count >= limit)
        }
        return ErrorQueueListing(entries: entries, otherConsumers: outcome.otherConsumers, queued: outcome.queued)
    }

    /// The first message with `messageId`; nil when none of the messages in the queue has it. Throws
    /// `ErrorQueueScanIncomplete` when it could not look at all of them, or when the queue had other
    /// consumers (which may hold it unacknowledged, out of sight); `ErrorQueueScanInterrupted` when it did
    /// not find it and the connection was lost meanwhile.
    public func show(messageId: String) async throws -> ErrorQueueEntry? {
        try await find(messageId) { _ in .keep }
    }

    /// Replays the first message with `messageId`; false when none of the messages in the queue has it.
    /// Throws `ErrorQueueScanIncomplete` when it could not look at all of them, and
    /// `ErrorQueueReplayFailure` when that message cannot be replayed (it stays in the queue).
    @discardableResult
    public func replay(messageId: String) async throws -> Bool {
        try await find(messageId) { delivery in
            try await republish(delivery)
            return .remove
        } != nil
    }

    /// How many messages the error queue holds now. After `replayAll`: the messages it skipped, the
    /// second copies of ids it replayed, and replayed messages that failed again and came back since.
    public func count() async throws -> Int {
        try await connection.checkQueue(errorQueue).messageCount
    }

    /// Deletes every message in the error queue; returns how many.
    public func purge() async throws -> Int {
        try await connection.purgeQueue(errorQueue)
    }

    /// Publishes the original message to its original queue and waits for the confirm. Throws
    /// `ErrorQueueReplayFailure` when it cannot go there (no origin, or refused for this message alone);
    /// other errors (the connection) propagate as they are.
    ///
    /// An event's copy (`x-original-exchange`) goes back to its exchange under its routing key, mandatory
    /// (a replay that reaches no queue fails rather than vanish): every queue bound for it gets it again,
    /// and the receivers that had it already drop it by its message id.
    func republish(_ delivery: AMQPDelivery) async throws {
        let entry = ErrorQueueEntry(delivery.message)
        var failure = ErrorQueueReplayFailure(entry, errorQueue: errorQueue, reason: .noOriginalQueue)
        let request: PublishRequest
        switch entry.replayExchange {
        case nil: throw failure
        case ""?: request = .toQueue(entry.originalQueue ?? "", entry.replayed)
        case let exchange?:
            request = PublishRequest(exchange: exchange, routingKey: entry.originalRoutingKey ?? "", mandatory: true,
                                     message: entry.replayed)
        }
        do {
            try await connection.publish(request)
        } catch let error as AMQPError where ErrorQueueReplayFailure.isPerMessage(error)
                    || (!request.exchange.isEmpty && ErrorQueueReplayFailure.isExchangeMissing(error)) {
            failure.reason = .refused(error)
            throw failure
        } catch let error as AMQPError where ErrorQueueReplayFailure.isAccessRefused(error) {
            // Thrown as it was, it ended the command with the broker's bare error, not saying that the
            // message is still in the error queue.
            failure.reason = .accessRefused(error)
            throw failure
        }
    }

    /// A pass over the queue. The window bounds how many deliveries the broker pushes ahead into this
    /// process, waiting to be looked at: 1,000, as before the scan could go past one window. Error copies
    /// of over-size messages keep bodies up to the broker's max_message_size (128 MiB on RabbitMQ 3.x,
    /// 16 MiB on 4.x), so the first window is 8 messages and later ones hold about 64 MiB of the largest
    /// body seen: a `replay --all` of 80 copies of 4 MiB peaked at 397 MiB (29 for an empty queue) with the
    /// whole queue pushed ahead while it waited for its confirms, 112 MiB with these windows.
    func scan() -> ErrorQueueScan {
        ErrorQueueScan(connection: connection, queue: errorQueue, window: 1000, firstWindow: 8, aheadBytes: 64 << 20)
    }

    /// Looks for `messageId` among the messages in the queue now, oldest first, and stops at the first
    /// copy: `act` decides whether it leaves the queue. Everything else stays.
    private func find(_ messageId: String,
                      _ act: (AMQPDelivery) async throws -> ErrorQueueScan.Disposition) async throws -> ErrorQueueEntry? {
        let scan = scan()
        var found: ErrorQueueEntry?
        let outcome = try await scan.run { delivery in
            guard delivery.properties.messageId == messageId else { return .keep }
            found = ErrorQueueEntry(delivery.message)
            return ErrorQueueScan.Step(disposition: try await act(delivery), stop: true)
        }
        // Not seen is not absent when some were not seen, or when other consumers may hold it.
        if found == nil, !outcome.isComplete || outcome.otherConsumers > 0 {
            throw ErrorQueueScanIncomplete(queue: errorQueue, messageId: messageId, scanned: outcome.visited,
                                           queued: outcome.queued, idle: scan.idle,
                                           otherConsumers: outcome.otherConsumers)
        }
        return found
    }
}
