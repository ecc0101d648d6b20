import Foundation
import Sagas

extension OutgoingMessage {
    /// Why AMQP cannot carry this message as the endpoint publishes it, or nil: the endpoint's check
    /// (`OutgoingLimits`), without the transport. Short strings hold at most 255 bytes; the properties
    /// (content type, delivery mode, timestamp, ids, type and the headers, as a field table of strings)
    /// must fit in one header frame, `frameMax` less 20 bytes of framing.
    func amqpLimitViolation(frameMax: Int) -> String? {
        // The endpoint's `OutgoingLimits.noQueueReason`: the default exchange routes by queue name.
        if exchange.isEmpty && routingKey.isEmpty { return "it is addressed to no queue (the queue name is empty)" }
        // The endpoint's `OutgoingLimits.directReplyToReason`.
        if (exchange.isEmpty && routingKey.hasPrefix("amq.rabbitmq.reply-to"))
            || replyTo?.hasPrefix("amq.rabbitmq.reply-to") == true {
            return "it is addressed to RabbitMQ's direct reply-to (amq.rabbitmq.reply-to…), or names it as its "
                + "reply_to, which an endpoint cannot use: its messages are sent only after its transaction commits "
                + "(possibly after a restart, when the requester's channel is gone), the broker returns them there, "
                + "and refuses a reply_to of it from a channel that does not consume it (406, closing the publishing "
                + "channel); replies must go to a queue"
        }
        let names: [(String?, String)] = [
            (exchange, "the exchange name"), (routingKey, "the routing key"), (correlationId, "the correlation-id property"),
            (replyTo, "the reply-to property"), (messageId, "the message-id property"), (type, "the type property"),
        ] + headers.keys.sorted().map { ($0, "a key of the headers") }
        for case (let value?, let what) in names where value.utf8.count > 255 {
            return "\(what) is \(value.utf8.count) bytes long; AMQP allows at most 255"
        }
        func short(_ value: String?) -> Int { value.map { 1 + $0.utf8.count } ?? 0 }
        // Flags, content type, delivery mode, timestamp; the ids and type; a table of long strings.
        var size = 2 + short(MessageCoding.contentType) + 1 + 8
        size += short(correlationId) + short(replyTo) + short(messageId) + short(type)
        if !headers.isEmpty {
            size += 4 + headers.reduce(0) { $0 + 1 + $1.key.utf8.count + 5 + $1.value.utf8.count }
        }
        let limit = frameMax - 20
        guard frameMax <= 0 || size <= limit else {
            return "the properties (mostly the headers) take \(size) bytes; one header frame holds at most \(limit) "
                + "(frame_max \(frameMax))"
        }
        return nil
    }
}
