import AMQPTransport
import Logging

/// Deliveries the endpoint hands back to a quorum queue (an immediate retry; transient failures and outgoing
/// messages or error-queue copies the broker did not confirm are kept in the process instead,
/// `HeldDeliveries`, and not counted). A quorum queue counts each hand-back in
/// `x-delivery-count`, and past its `delivery-limit` (a policy or `x-delivery-limit`; RabbitMQ 4 gives every
/// quorum queue a limit of 20) the broker drops the message, or dead-letters it, without telling the
/// consumer. The endpoint cannot read the limit over AMQP (a policy is not visible there), so it cannot
/// keep under it; a message lost this way left no trace in the log: its last record said it would be
/// retried, and it never came back. (Seen with a limit of 3: a failed message whose error queue was full
/// for 8 s, and an increment while the database was locked for 10 s, vanished from both queues.)
///
/// So each such hand-back is logged as a warning naming the queue, the message and the count the broker
/// will have after it, at most one a second per queue (with the number of hand-backs since the last),
/// telling the operator to lift the limit. A queue without the header (classic) logs nothing here, nor
/// does a quorum message's first hand-back: the broker adds the header only once it has counted one.
struct QuorumHandBacks {
    /// The broker's header on a redelivery from a quorum queue: how often it has been returned so far.
    static let deliveryCountHeader = "x-delivery-count"

    private(set) var handBacks: [(queue: String, messageId: String, messageType: String, count: Int, reason: String)] = []

    /// Notes that `delivery` is handed back to its queue for `reason`, if the broker counts it.
    mutating func add(_ delivery: AMQPDelivery, messageId: String, reason: String) {
        guard let returned = delivery.properties.headers?[Self.deliveryCountHeader]?.intValue else { return }
        handBacks.append((delivery.queue, messageId, delivery.properties.type ?? "", returned + 1, reason))
    }

    /// Logs one warning per queue, throttled by `throttle`; the record names the queue's latest hand-back.
    func log(to logger: Logger, throttle: WarningThrottle) {
        var latest: [String: (messageId: String, messageType: String, count: Int, reason: String, messages: Int)] = [:]
        for handBack in handBacks {
            let messages = (latest[handBack.queue]?.messages ?? 0) + 1
            latest[handBack.queue] = (handBack.messageId, handBack.messageType, handBack.count, handBack.reason, messages)
        }
        for (queue, last) in latest.sorted(by: { $0.key < $1.key }) {
            guard let count = throttle.admit("quorum-hand-back\u{0}\(queue)", messages: last.messages) else { continue }
            logger.warning(
                "message handed back to a quorum queue, which counts every hand-back: past the queue's delivery-limit (RabbitMQ 4 sets 20 by default) the broker drops or dead-letters it without the endpoint knowing; give the endpoint's input queues an unlimited delivery-limit",
                metadata: [
                    "queue": "\(queue)", "message_id": "\(last.messageId)", "message_type": "\(last.messageType)",
                    "delivery_count": "\(last.count)", "reason": "\(last.reason)", "count": "\(count)"])
        }
    }
}
