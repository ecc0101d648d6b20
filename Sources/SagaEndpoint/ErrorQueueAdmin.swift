public import AMQPTransport
public import Foundation
import Synchronization

/// A message parked in an error queue, as an operator sees it.
public struct ErrorQueueEntry: Sendable {
    public var messageId: String
    public var type: String?
    public var originalQueue: String?
    public var reason: String?
    public var errorType: String?
    public var attempts: Int?
    public var firstFailure: String?
    public var lastFailure: String?
    public var host: String?
    public var properties: BasicProperties
    public var body: Data

    init(_ message: AMQPMessage) {
        let headers = message.properties.headers ?? [:]
        messageId = message.properties.messageId ?? ""
        type = message.properties.type
        originalQueue = headers["x-original-queue"]?.stringValue
        reason = headers["x-error-reason"]?.stringValue
        errorType = headers["x-error-type"]?.stringValue
        attempts = headers["x-attempts"]?.intValue
        firstFailure = headers["x-first-failure"]?.stringValue
        lastFailure = headers["x-last-failure"]?.stringValue
        host = headers["x-host"]?.stringValue
        properties = message.properties
        body = message.body
    }

    /// The message as it was before it failed: the error headers removed, the same message id.
    public var original: AMQPMessage {
        var properties = properties
        if var headers = properties.headers {
            for key in ErrorQueueAdmin.errorHeaders { headers.removeValue(forKey: key) }
            properties.headers = headers.isEmpty ? nil : headers
        }
        return AMQPMessage(body: body, properties: properties)
    }
}

/// Reads, replays and purges an error queue.
///
/// Replay publishes the original message (same message id, error headers removed) to its original queue
/// and waits for the broker's confirm before it acknowledges the error-queue copy, so a crash during
/// replay loses nothing; a message replayed twice is dropped by the endpoint's inbox.
public struct ErrorQueueAdmin: Sendable {
    static let errorHeaders = ["x-error-reason", "x-error-type", "x-error-description", "x-original-queue",
                               "x-attempts", "x-first-failure", "x-last-failure", "x-host"]

    public let connection: AMQPConnection
    public let errorQueue: String

    public init(connection: AMQPConnection, errorQueue: String) {
        self.connection = connection
        self.errorQueue = errorQueue
    }

    /// Up to `limit` messages, oldest first; they stay in the queue.
    public func list(limit: Int = 100) async throws -> [ErrorQueueEntry] {
        try await browse(limit: limit) { _ in .keep }.map(ErrorQueueEntry.init)
    }

    public func show(messageId: String) async throws -> ErrorQueueEntry? {
        try await list(limit: Int(UInt16.max)).first { $0.messageId == messageId }
    }

    /// Replays one message by id; false when it is not in the error queue.
    @discardableResult
    public func replay(messageId: String) async throws -> Bool {
        var replayed = false
        _ = try await browse(limit: Int(UInt16.max)) { delivery in
            guard !replayed, delivery.properties.messageId == messageId else { return .keep }
            try await republish(delivery)
            replayed = true
            return .remove
        }
        return replayed
    }

    /// Replays every message; returns how many.
    public func replayAll() async throws -> Int {
        var count = 0
        while true {
            let batch = try await browse(limit: 1000) { delivery in
                try await republish(delivery)
                return .remove
            }
            count += batch.count
            if batch.isEmpty { return count }
        }
    }

    /// Deletes every message in the error queue; returns how many.
    public func purge() async throws -> Int {
        try await connection.purgeQueue(errorQueue)
    }

    private func republish(_ delivery: AMQPDelivery) async throws {
        let entry = ErrorQueueEntry(delivery.message)
        guard let queue = entry.originalQueue, !queue.isEmpty else {
            throw AMQPError(.invalidConfiguration, message: "message \(entry.messageId) has no x-original-queue header",
                            operation: "replay from \(errorQueue)")
        }
        try await connection.publish(.toQueue(queue, entry.original))
    }

    private enum Decision { case keep, remove }

    /// Consumes up to `limit` messages, lets `decide` act on each, acks those removed and returns the rest
    /// to the queue when done. It stops at `limit` or when no message came for `idle` (the queue's
    /// message count is only a hint: requeued messages may not be counted yet).
    private func browse(limit: Int, idle: Duration = .milliseconds(500),
                        _ decide: (AMQPDelivery) async throws -> Decision) async throws -> [AMQPMessage] {
        guard limit > 0 else { return [] }
        let consumer = try await connection.consume(queue: errorQueue, prefetch: UInt16(min(limit, 1000)))
        let activity = ActivityClock()
        let watchdog = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(50))
                if activity.idleFor > idle { try await consumer.cancel(); return }
            }
        }
        defer { watchdog.cancel() }
        var seen: [AMQPMessage] = []
        var kept: [DeliveryTag] = []
        do {
            for try await delivery in consumer.deliveries {
                activity.touch()
                seen.append(delivery.message)
                switch try await decide(delivery) {
                case .keep: kept.append(delivery.tag)
                case .remove: try await connection.ack(delivery.tag)
                }
                activity.touch()
                if seen.count >= limit { break }
            }
        } catch {
            for tag in kept { try? await connection.nack(tag, requeue: true) }
            try? await consumer.cancel()
            throw error
        }
        try await consumer.cancel()
        for tag in kept { try await connection.nack(tag, requeue: true) }
        return seen
    }
}

/// When the browse last saw activity, read by its idle watchdog.
private final class ActivityClock: Sendable {
    private let last = Mutex(ContinuousClock.now)
    func touch() { last.withLock { $0 = .now } }
    var idleFor: Duration { ContinuousClock.now - last.withLock { $0 } }
}
