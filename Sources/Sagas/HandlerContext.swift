public import Foundation

/// What a handler may do besides changing its saga's state: emit messages, ask for timeouts, complete.
///
/// Nothing is sent while the handler runs. Emitted messages are collected and committed with the state
/// change and the inbox record in one transaction, then published; so a handler that throws has no
/// effect at all.
public final class HandlerContext {
    /// The message being handled.
    public let incoming: IncomingMessage
    /// The endpoint's clock (a virtual clock in `SagaTesting`).
    public let now: Date
    /// The endpoint's own input queue: the default `reply_to` of commands sent from here.
    public let endpointAddress: String
    /// The saga instance being handled, nil in a stateless handler.
    public let saga: SagaInstanceKey?
    /// The `reply_to` and `correlation_id` of the message that started the saga.
    public let originator: Originator?

    private let handlerKey: String
    /// The handle span's context, when a tracer is installed (set by `HandlerSpan`).
    var tracing: MessageTracing?
    private(set) var outgoing: [OutgoingMessage] = []
    private(set) var timeouts: [TimeoutRequest] = []
    private(set) var isCompleted = false
    private var position = 0

    init(incoming: IncomingMessage, now: Date, endpointAddress: String, handlerKey: String,
         saga: SagaInstanceKey?, originator: Originator?) {
        self.incoming = incoming
        self.now = now
        self.endpointAddress = endpointAddress
        self.saga = saga
        self.originator = originator
        self.handlerKey = handlerKey
    }

    /// Sends a command to a queue. `correlationId` defaults to the saga's correlation id and `replyTo`
    /// to this endpoint's input queue, so the receiver's reply comes back to this saga. Pass `messageId`
    /// to re-send an earlier command with its original id (receivers deduplicate). Returns the id.
    @discardableResult
    public func send<M: Message>(
        _ message: M, to queue: String, correlationId: String? = nil, replyTo: String? = nil,
        messageId: String? = nil, headers: [String: String] = [:]
    ) throws -> String {
        try emit(message, kind: .send, exchange: "", routingKey: queue,
                 correlationId: correlationId ?? saga?.correlationId,
                 replyTo: replyTo ?? (endpointAddress.isEmpty ? nil : endpointAddress),
                 messageId: messageId, headers: headers)
    }

    /// Publishes an event to an exchange. The routing key defaults to the message type.
    @discardableResult
    public func publish<M: Message>(
        _ message: M, to exchange: String, routingKey: String? = nil, headers: [String: String] = [:]
    ) throws -> String {
        try emit(message, kind: .publish, exchange: exchange, routingKey: routingKey ?? M.messageType,
                 correlationId: saga?.correlationId, replyTo: nil, messageId: nil, headers: headers)
    }

    /// Replies to the incoming message's `reply_to`, with its `correlation_id`.
    @discardableResult
    public func reply<M: Message>(_ message: M, headers: [String: String] = [:]) throws -> String {
        guard let replyTo = incoming.replyTo, !replyTo.isEmpty else {
            throw SagaError.noReplyAddress(messageType: incoming.type, messageId: incoming.messageId)
        }
        return try emit(message, kind: .reply, exchange: "", routingKey: replyTo,
                        correlationId: incoming.correlationId, replyTo: nil, messageId: nil, headers: headers)
    }

    /// Replies to whoever started the saga (the `reply_to` of its first message), with that message's
    /// `correlation_id`.
    @discardableResult
    public func replyToOriginator<M: Message>(_ message: M, headers: [String: String] = [:]) throws -> String {
        guard saga != nil else { throw SagaError.notInSaga(operation: "replyToOriginator") }
        guard let replyTo = originator?.replyTo, !replyTo.isEmpty else {
            throw SagaError.noReplyAddress(messageType: incoming.type, messageId: incoming.messageId)
        }
        return try emit(message, kind: .reply, exchange: "", routingKey: replyTo,
                        correlationId: originator?.correlationId, replyTo: nil, messageId: nil, headers: headers)
    }

    /// Asks for `message` to be delivered back to this saga instance after `delay`. Timeouts are stored
    /// durably; those of a completed saga are cancelled and never delivered. Returns the timeout's id.
    @discardableResult
    public func requestTimeout<M: Message>(after delay: Duration, _ message: M) throws -> String {
        guard let saga else { throw SagaError.notInSaga(operation: "requestTimeout") }
        let id = nextId(suffix: "t")
        let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
        timeouts.append(TimeoutRequest(
            timeoutId: id, saga: saga, dueAt: now.addingTimeInterval(seconds), type: M.messageType,
            body: try MessageCoding.encode(message), headers: traceHeaders([:])
        ))
        return id
    }

    /// Ends the saga: its state is deleted in the same transaction and its pending timeouts cancelled.
    public func markComplete() throws {
        guard saga != nil else { throw SagaError.notInSaga(operation: "markComplete") }
        isCompleted = true
    }

    private func emit<M: Message>(
        _ message: M, kind: OutgoingMessage.Kind, exchange: String, routingKey: String,
        correlationId: String?, replyTo: String?, messageId: String?, headers: [String: String]
    ) throws -> String {
        let id = messageId ?? nextId(suffix: "")
        if messageId != nil { position += 1 }
        outgoing.append(OutgoingMessage(
            messageId: id, kind: kind, type: M.messageType, body: try MessageCoding.encode(message),
            exchange: exchange, routingKey: routingKey, correlationId: correlationId, replyTo: replyTo,
            headers: traceHeaders(headers)
        ))
        return id
    }

    /// W3C trace context follows the message into what it causes (messages and timeouts), so a trace
    /// spans the saga's hops. With a tracer installed the handle span's context is written (a child of
    /// the incoming trace); without one, or for what the tracer does not write, the incoming
    /// `traceparent`/`tracestate` are copied. A header the handler set itself wins.
    private func traceHeaders(_ headers: [String: String]) -> [String: String] {
        var headers = headers
        if let tracing, headers["traceparent"] == nil { tracing.inject(into: &headers) }
        for key in Self.propagatedHeaders where headers[key] == nil {
            if let value = incoming.headers[key] { headers[key] = value }
        }
        return headers
    }

    /// Headers copied from the incoming message to every message it causes.
    public static let propagatedHeaders = ["traceparent", "tracestate"]

    private func nextId(suffix: String) -> String {
        position += 1
        return MessageIdentity.derive(from: incoming.messageId, handler: handlerKey, position: suffix + String(position))
    }
}

/// The `reply_to` and `correlation_id` of the message that started a saga, kept in saga metadata.
public struct Originator: Sendable, Equatable {
    public var replyTo: String?
    public var correlationId: String?

    public init(replyTo: String?, correlationId: String?) {
        self.replyTo = replyTo
        self.correlationId = correlationId
    }
}
