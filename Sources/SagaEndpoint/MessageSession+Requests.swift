public import AMQPTransport
import Foundation
public import Sagas

// Building messages in the wire format endpoints read, for `MessageSession.send(_:)` (which sends many
// at once) and for callers that publish through an `AMQPConnection` of their own.
extension MessageSession {
    /// A command for `queue`: through the default exchange, mandatory (a missing queue is an error).
    public static func command<M: Message>(
        _ message: M, to queue: String, messageId: String? = nil, correlationId: String? = nil,
        replyTo: String? = nil, headers: [String: String] = [:], appId: String? = nil
    ) throws(MessageSessionError) -> PublishRequest {
        let properties = try properties(M.self, messageId: messageId, correlationId: correlationId, replyTo: replyTo,
                                        headers: headers, appId: appId, destination: "queue '\(queue)'")
        guard !queue.isEmpty else {
            throw MessageSessionError(.invalidMessage, messageId: properties.messageId ?? "", messageType: M.messageType,
                                      destination: "queue ''", reason: "the queue name is empty")
        }
        // RabbitMQ returns a mandatory publish to its direct reply-to, and closes the connection (541) for an
        // address that does not decode: as an endpoint's handlers, a session does not send there.
        guard !OutgoingLimits.isDirectReplyTo(exchange: "", routingKey: queue),
              !OutgoingLimits.isDirectReplyTo(exchange: "", routingKey: replyTo ?? "") else {
            throw MessageSessionError(.invalidMessage, messageId: properties.messageId ?? "", messageType: M.messageType,
                                      destination: "queue '\(queue)'",
                                      reason: "RabbitMQ's direct reply-to (amq.rabbitmq.reply-to…) takes no mandatory "
                                          + "publish (the broker would return it, or close the connection for an "
                                          + "address that does not decode), and as a reply_to it needs a consumer "
                                          + "on the publishing channel (406): name a queue")
        }
        return .toQueue(queue, AMQPMessage(body: try body(message, properties, "queue '\(queue)'"), properties: properties))
    }

    /// An event for `exchange` with `routingKey` (by default the message type): not mandatory, as the
    /// endpoint publishes events (with no queue bound the broker drops it).
    public static func event<M: Message>(
        _ event: M, to exchange: String, routingKey: String? = nil, messageId: String? = nil,
        correlationId: String? = nil, headers: [String: String] = [:], appId: String? = nil
    ) throws(MessageSessionError) -> PublishRequest {
        let key = routingKey ?? M.messageType
        let destination = "exchange '\(exchange)' with routing key '\(key)'"
        let properties = try properties(M.self, messageId: messageId, correlationId: correlationId, replyTo: nil,
                                        headers: headers, appId: appId, destination: destination)
        guard !exchange.isEmpty else {
            // The default exchange would route it to a queue named like the key: that is `command`.
            throw MessageSessionError(.invalidMessage, messageId: properties.messageId ?? "", messageType: M.messageType,
                                      destination: destination, reason: "the exchange name is empty (send a command to a queue instead)")
        }
        return PublishRequest(exchange: exchange, routingKey: key, mandatory: false,
                              message: AMQPMessage(body: try body(event, properties, destination), properties: properties))
    }

    /// A new message id: a lowercase UUID.
    public static func newMessageId() -> String { UUID().uuidString.lowercased() }

    private static func properties<M: Message>(
        _ type: M.Type, messageId: String?, correlationId: String?, replyTo: String?, headers: [String: String],
        appId: String?, destination: String
    ) throws(MessageSessionError) -> BasicProperties {
        let id = messageId ?? newMessageId()
        // An endpoint sends a message without an id to its error queue (it cannot be deduplicated).
        guard !id.isEmpty else {
            throw MessageSessionError(.invalidMessage, messageId: "", messageType: M.messageType, destination: destination,
                                      reason: "the message id is empty")
        }
        var table: FieldTable = [:]
        for (key, value) in headers { table[key] = .string(value) }
        return BasicProperties(
            contentType: MessageCoding.contentType, headers: table.isEmpty ? nil : table, deliveryMode: .persistent,
            correlationId: correlationId, replyTo: replyTo, messageId: id,
            timestamp: UInt64(max(0, Date().timeIntervalSince1970)), type: M.messageType, appId: appId)
    }

    private static func body<M: Message>(_ message: M, _ properties: BasicProperties,
                                         _ destination: String) throws(MessageSessionError) -> Data {
        do {
            return try MessageCoding.encode(message)
        } catch {
            throw MessageSessionError(.invalidMessage, messageId: properties.messageId ?? "", messageType: M.messageType,
                                      destination: destination, reason: "the body did not encode: \(error)")
        }
    }
}
