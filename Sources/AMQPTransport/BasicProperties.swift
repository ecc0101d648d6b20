public import Foundation

/// The AMQP basic properties of a message.
public struct BasicProperties: Sendable, Hashable {
    public enum DeliveryMode: UInt8, Sendable, Hashable {
        case transient = 1
        case persistent = 2
    }

    public var contentType: String?
    public var contentEncoding: String?
    public var headers: FieldTable?
    public var deliveryMode: DeliveryMode?
    public var priority: UInt8?
    public var correlationId: String?
    public var replyTo: String?
    public var expiration: String?
    public var messageId: String?
    /// Seconds since 1970 (AMQP timestamps have second precision).
    public var timestamp: UInt64?
    public var type: String?
    public var userId: String?
    public var appId: String?
    public var clusterId: String?
    /// The properties of a received message whose bytes were not valid UTF-8 ("message-id", "reply-to",
    /// "a header key", …): AMQP short strings are text to every client, and these were decoded with U+FFFD
    /// for each invalid byte, so they are not the bytes that were sent (two different ids can become one).
    /// Empty for a message built here; never sent.
    public var invalidUTF8: [String] = []

    public init(
        contentType: String? = nil, contentEncoding: String? = nil, headers: FieldTable? = nil,
        deliveryMode: DeliveryMode? = nil, priority: UInt8? = nil, correlationId: String? = nil,
        replyTo: String? = nil, expiration: String? = nil, messageId: String? = nil, timestamp: UInt64? = nil,
        type: String? = nil, userId: String? = nil, appId: String? = nil, clusterId: String? = nil
    ) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageId = messageId
        self.timestamp = timestamp
        self.type = type
        self.userId = userId
        self.appId = appId
        self.clusterId = clusterId
    }

    public var isPersistent: Bool { deliveryMode == .persistent }
}

/// A message body with its properties.
public struct AMQPMessage: Sendable, Hashable {
    public var properties: BasicProperties
    public var body: Data

    public init(body: Data, properties: BasicProperties = BasicProperties()) {
        self.body = body
        self.properties = properties
    }
}

/// One message to publish: where to, and whether an unroutable publish is an error (`mandatory`).
public struct PublishRequest: Sendable, Hashable {
    public var exchange: String
    public var routingKey: String
    public var mandatory: Bool
    public var message: AMQPMessage

    public init(exchange: String, routingKey: String, mandatory: Bool = true, message: AMQPMessage) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.mandatory = mandatory
        self.message = message
    }

    /// A command for a queue, through the default exchange.
    public static func toQueue(_ queue: String, _ message: AMQPMessage, mandatory: Bool = true) -> PublishRequest {
        PublishRequest(exchange: "", routingKey: queue, mandatory: mandatory, message: message)
    }

    /// Throws `.invalidArgument` if AMQP cannot carry this publish: a name, property or header key over
    /// 255 bytes, or properties (headers) larger than one frame of `frameMax` bytes. `publish` checks the
    /// same before sending; callers that store a message to send later can check it up front.
    public func checkLimits(frameMax: Int) throws {
        try ProtocolLimits.check(self, frameMax: frameMax)
    }
}

/// How the broker answered one publish.
public enum PublishOutcome: Sendable, Equatable {
    /// basic.ack: the broker has taken responsibility for the message.
    case confirmed
    /// basic.return then basic.ack: a mandatory message no queue was bound to receive.
    case returned(replyCode: UInt16, replyText: String)
    /// basic.nack: the broker could not take the message.
    case nacked
    /// The channel or connection failed before the broker answered; the message may or may not have
    /// been taken, so publish it again (with the same message id).
    case failed(AMQPError)

    public var isConfirmed: Bool { self == .confirmed }
}
