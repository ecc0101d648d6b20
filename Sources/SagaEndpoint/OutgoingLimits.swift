import AMQPTransport
import SagaStore

/// An outgoing message that AMQP cannot carry or route: a name or property over 255 bytes, headers larger
/// than one frame, a command sent to an empty queue name or to RabbitMQ's direct reply-to (or naming it as
/// its reply_to). A permanent failure of the handler that emitted it, so its incoming message goes to the error queue with the reason. (Stored and published
/// later, it would fail at every publish, and the incoming message would be requeued and redelivered
/// without end.)
struct InvalidOutgoingMessage: Error, CustomStringConvertible {
    var messageId: String
    var messageType: String
    var reason: String

    var description: String { "outgoing message \(messageId) (\(messageType)) cannot be sent: \(reason)" }
}

/// Checks outgoing messages against what the broker can carry before they are stored.
enum OutgoingLimits {
    /// The frame size `publisher` negotiated last, read at each use: a broker restarted with another
    /// `frame_max` negotiates it anew when the connection recovers (a copy taken at start went stale, and
    /// messages it let through were stored, then refused at every publish). The broker's default before
    /// the first connection.
    static func frameMax(of publisher: AMQPConnection?) -> Int {
        let negotiated = publisher?.lastNegotiatedFrameMax ?? 0
        return negotiated > 0 ? negotiated : AMQPConfiguration.defaultFrameMax
    }

    static let noQueueReason = "it is addressed to no queue (the queue name is empty)"

    /// Why a message to RabbitMQ's direct reply-to pseudo-queue (or with it as its `reply_to`) is refused.
    /// RabbitMQ returns a mandatory publish there (so a reply to a live requester came round for ever), an
    /// address that does not decode makes RabbitMQ 3.10 close the publishing connection with 541 (any producer could set one as
    /// its `reply_to` and have the endpoint's connection killed at every publish).
    static let directReplyToReason = "it is addressed to RabbitMQ's direct reply-to (amq.rabbitmq.reply-to…), or "
        + "names it as its reply_to, which an endpoint cannot use: its messages are sent only after its transaction "
        + "commits (possibly after a restart, when the requester's channel is gone), the broker returns them "
        + "there, and refuses a reply_to of it from a channel that does not consume it (406, closing the "
        + "publishing channel); replies must go to a queue"

    /// Whether a message through the default exchange with this routing key goes to direct reply-to.
    static func isDirectReplyTo(exchange: String, routingKey: String) -> Bool {
        exchange.isEmpty && routingKey.hasPrefix("amq.rabbitmq.reply-to")
    }

    /// Throws `InvalidOutgoingMessage`. Most messages pass the cheap test on sizes alone; only a message
    /// with a long name or large headers is built as the publish it would become and checked in full.
    static func check(_ record: OutboxRecord, frameMax: Int) throws {
        // Through the default exchange, the routing key is the queue: with none, the broker returns the
        // message at every publish and its incoming message would come round for ever.
        if record.exchange.isEmpty && record.routingKey.isEmpty {
            throw InvalidOutgoingMessage(messageId: record.messageId, messageType: record.messageType,
                                         reason: Self.noQueueReason)
        }
        if isDirectReplyTo(exchange: record.exchange, routingKey: record.routingKey)
            || record.replyTo.map({ isDirectReplyTo(exchange: "", routingKey: $0) }) == true {
            throw InvalidOutgoingMessage(messageId: record.messageId, messageType: record.messageType,
                                         reason: Self.directReplyToReason)
        }
        func short(_ value: String?) -> Bool { (value?.utf8.count ?? 0) <= 255 }
        var headerBytes = 0
        var keysFit = true
        for (key, value) in record.headers {
            headerBytes += key.utf8.count + value.utf8.count
            keysFit = keysFit && key.utf8.count <= 255
        }
        if keysFit, headerBytes < 4096, short(record.exchange), short(record.routingKey), short(record.messageType),
           short(record.messageId), short(record.correlationId), short(record.replyTo) {
            return
        }
        do {
            try MessageTranslation.publishRequest(record).checkLimits(frameMax: frameMax)
        } catch let error as AMQPError {
            throw InvalidOutgoingMessage(messageId: record.messageId, messageType: record.messageType,
                                         reason: error.message)
        }
    }
}
