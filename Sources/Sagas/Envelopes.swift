public import Foundation

/// A message as it reaches a handler: the decoded-independent envelope of an AMQP delivery or a timeout.
public struct IncomingMessage: Sendable, Equatable {
    /// The AMQP `message_id`; the inbox deduplicates on it.
    public var messageId: String
    /// The AMQP `type`: selects the handlers.
    public var type: String
    public var body: Data
    public var correlationId: String?
    public var replyTo: String?
    public var headers: [String: String]
    /// The queue the message was consumed from (empty for timeouts).
    public var queue: String
    /// Set when the message is a saga's own timeout: only that saga instance receives it.
    public var timeoutTarget: SagaInstanceKey?

    public init(
        messageId: String, type: String, body: Data, correlationId: String? = nil, replyTo: String? = nil,
        headers: [String: String] = [:], queue: String = "", timeoutTarget: SagaInstanceKey? = nil
    ) {
        self.messageId = messageId
        self.type = type
        self.body = body
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.headers = headers
        self.queue = queue
        self.timeoutTarget = timeoutTarget
    }
}

/// Identifies one saga instance: its saga type and correlation id.
public struct SagaInstanceKey: Sendable, Hashable, CustomStringConvertible {
    public var sagaType: String
    public var correlationId: String

    public init(sagaType: String, correlationId: String) {
        self.sagaType = sagaType
        self.correlationId = correlationId
    }

    public var description: String { "\(sagaType)/\(correlationId)" }
}

/// A message a handler emitted, addressed for AMQP: a command sent to a queue goes through the default
/// exchange with the queue as routing key.
public struct OutgoingMessage: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case send, publish, reply
    }

    /// Deterministic: derived from the incoming message id and the position, so a re-send after a crash
    /// carries the same id and downstream inboxes drop the copy.
    public var messageId: String
    public var kind: Kind
    public var type: String
    public var body: Data
    public var exchange: String
    public var routingKey: String
    public var correlationId: String?
    public var replyTo: String?
    public var headers: [String: String]

    public init(
        messageId: String, kind: Kind, type: String, body: Data, exchange: String, routingKey: String,
        correlationId: String? = nil, replyTo: String? = nil, headers: [String: String] = [:]
    ) {
        self.messageId = messageId
        self.kind = kind
        self.type = type
        self.body = body
        self.exchange = exchange
        self.routingKey = routingKey
        self.correlationId = correlationId
        self.replyTo = replyTo
        self.headers = headers
    }

    /// The queue a command or reply was sent to (nil for a publish to a named exchange).
    public var queue: String? { exchange.isEmpty ? routingKey : nil }

    /// Decodes the body as `M`; for tests and tools.
    public func decode<M: Message>(_ type: M.Type) throws -> M {
        try MessageCoding.decode(type, from: body, messageType: self.type)
    }
}

/// A timeout a saga asked for: delivered back to the same saga instance when due.
public struct TimeoutRequest: Sendable, Equatable {
    public var timeoutId: String
    public var saga: SagaInstanceKey
    public var dueAt: Date
    public var type: String
    public var body: Data
    public var headers: [String: String]

    public init(timeoutId: String, saga: SagaInstanceKey, dueAt: Date, type: String, body: Data, headers: [String: String] = [:]) {
        self.timeoutId = timeoutId
        self.saga = saga
        self.dueAt = dueAt
        self.type = type
        self.body = body
        self.headers = headers
    }

    /// The message the timeout becomes when it falls due; its id is the timeout id, so the inbox
    /// deduplicates a timeout that fired twice.
    public func asIncomingMessage() -> IncomingMessage {
        IncomingMessage(
            messageId: timeoutId, type: type, body: body, correlationId: saga.correlationId,
            headers: headers, queue: "", timeoutTarget: saga
        )
    }
}
