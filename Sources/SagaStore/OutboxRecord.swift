public import Foundation

/// A message produced while handling an incoming message, stored in the same transaction as the saga
/// change and published afterwards (the outbox pattern): a crash between commit and publish re-publishes
/// from here instead of losing the message.
public struct OutboxRecord: Sendable, Equatable {
    /// The row's number in the outbox: nil until the record is stored (`appendOutbox` returns the
    /// stored records), then what `markDispatched` is given.
    public var seq: Int64?
    public var messageId: String
    /// The message whose handling produced this one; all its outgoing messages share it.
    public var incomingMessageId: String
    /// Order among the messages of one incoming message, so they are published in the order sent.
    public var position: Int
    public var exchange: String
    public var routingKey: String
    public var mandatory: Bool
    public var messageType: String
    public var correlationId: String?
    public var replyTo: String?
    public var headers: [String: String]
    public var body: Data
    public var createdAt: Date
    /// nil until the broker confirmed the publish.
    public var dispatchedAt: Date?

    public init(
        messageId: String,
        incomingMessageId: String,
        position: Int,
        exchange: String,
        routingKey: String,
        mandatory: Bool = false,
        messageType: String,
        correlationId: String? = nil,
        replyTo: String? = nil,
        headers: [String: String] = [:],
        body: Data,
        createdAt: Date,
        dispatchedAt: Date? = nil,
        seq: Int64? = nil
    ) {
        self.seq = seq
        self.messageId = messageId
        self.incomingMessageId = incomingMessageId
        self.position = position
        self.exchange = exchange
        self.routingKey = routingKey
        self.mandatory = mandatory
        self.messageType = messageType
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.headers = headers
        self.body = body
        self.createdAt = createdAt
        self.dispatchedAt = dispatchedAt
    }
}

/// What identifies a stored outbox row: its row number. (The outgoing message id is not a key: a saga
/// may send a command again under its first id, from another incoming message.)
public struct OutboxKey: Sendable, Hashable {
    public var seq: Int64

    public init(seq: Int64) {
        self.seq = seq
    }
}

extension OutboxRecord {
    /// nil for a record that is not stored yet.
    public var key: OutboxKey? { seq.map(OutboxKey.init(seq:)) }
}
