public import AMQPTransport

/// A message in an error queue that cannot be replayed: it has no `x-original-queue` header, or its
/// original queue refused it (gone: the publish came back unroutable; full: the broker nacked it). It stays
/// in the error queue. `replayAll` skips it and goes on with the others; `replay(messageId:)` throws this.
public struct ErrorQueueReplayFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// The message has no `x-original-queue` header (or an empty one): there is nowhere to send it.
        case noOriginalQueue
        /// Publishing to the original queue failed for this message (unroutable, nacked, or a name AMQP
        /// cannot carry; for an event's copy, also its exchange gone: 404). The connection is fine; other
        /// messages can still be replayed.
        case refused(AMQPError)
        /// The broker refused this user the publish (403 ACCESS_REFUSED): the user has no write permission
        /// on the exchange a replay publishes to (`amq.default` for a copy naming its queue, the event's
        /// exchange for an event's copy) in the vhost, or, on a topic exchange, under the event's routing key
        /// (topic permissions). Not about this message: every replay to that exchange (under that routing
        /// key) would be refused alike, so `replayAll` skips the others without publishing them, and goes on
        /// with the rest (RabbitMQ's permissions are per exchange, its topic permissions per routing key).
        case accessRefused(AMQPError)
    }

    public var messageId: String
    /// The error queue the message is in (and stays in).
    public var errorQueue: String
    /// Its `x-original-queue` header, if it has one.
    public var originalQueue: String?
    /// Its `x-original-exchange` header (an event's copy), where the replay was sent instead.
    public var originalExchange: String?
    public var reason: Reason

    public init(messageId: String, errorQueue: String, originalQueue: String?, reason: Reason) {
        self.messageId = messageId
        self.errorQueue = errorQueue
        self.originalQueue = originalQueue
        self.reason = reason
    }

    init(_ entry: ErrorQueueEntry, errorQueue: String, reason: Reason) {
        self.init(messageId: entry.messageId, errorQueue: errorQueue, originalQueue: entry.originalQueue, reason: reason)
        if let exchange = entry.originalExchange, !exchange.isEmpty { originalExchange = exchange }
    }

    /// Why, without the message id (for a line that names it already).
    public var why: String {
        switch reason {
        case .noOriginalQueue:
            return "it has no x-original-queue header (nor x-original-exchange)"
        case .refused(let error) where Self.isExchangeMissing(error) && originalExchange != nil:
            return "its original exchange '\(originalExchange ?? "")' does not exist (\(error))"
        case .refused(let error) where error.code == .unroutable:
            if let exchange = originalExchange {
                return "no queue is bound for it to its original exchange '\(exchange)' (\(error))"
            }
            return "its original queue '\(originalQueue ?? "")' does not exist (\(error))"
        case .refused(let error):
            if let exchange = originalExchange {
                return "a queue bound for it to its original exchange '\(exchange)' refused it (\(error))"
            }
            return "its original queue '\(originalQueue ?? "")' refused it (\(error))"
        case .accessRefused(let error):
            if let exchange = originalExchange {
                return "this user may not publish to the exchange '\(exchange)', where a replay sends it (it needs "
                    + "write permission on it in the vhost; \(error))"
            }
            return "this user may not publish to the default exchange, where a replay sends it (it needs write "
                + "permission on 'amq.default' in the vhost; \(error))"
        }
    }

    public var description: String {
        let id = messageId.isEmpty ? "without message id" : messageId
        return "message \(id) in \(errorQueue) cannot be replayed: \(why); it stays in \(errorQueue)"
    }

    /// Whether a publish error concerns this message alone (so a pass can skip it and go on), rather than
    /// the connection (then every later publish fails too and the pass stops).
    static func isPerMessage(_ error: AMQPError) -> Bool {
        [.unroutable, .nacked, .invalidArgument].contains(error.code)
    }

    /// Whether the broker refused the publish because its exchange does not exist: it closes the publishing
    /// channel with 404. Only an event's copy can meet it (the default exchange always exists): its exchange
    /// was deleted or renamed since. About that copy alone: taken for a connection failure, it ended
    /// `replayAll` there, the copies after it not replayed, and the command blamed the error queue.
    static func isExchangeMissing(_ error: AMQPError) -> Bool {
        error.code == .channelClosed && error.replyCode == 404
    }

    /// Whether the broker refused the publish for want of permission: it closes the publishing channel with
    /// 403. The connection is fine (the pass's consumers go on), but every later replay to the same exchange
    /// is refused alike.
    static func isAccessRefused(_ error: AMQPError) -> Bool {
        error.code == .channelClosed && error.replyCode == 403
    }
}
