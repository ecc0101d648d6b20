public import AMQPTransport
import Foundation
public import Logging
public import Sagas
public import Tracing

/// Sends commands and publishes events from outside a handler (a web request, a job, a script, a test) in
/// the wire format endpoints read: a JSON body, the message type in `type`, a `message_id`, persistent,
/// `content_type` application/json. NServiceBus's `IMessageSession`, MassTransit's `IBus`.
///
/// A call returns once the broker confirmed the message. While the connection is lost or recovering it
/// waits and sends again under the same message id, for up to `resendWindow`; a receiving endpoint's
/// inbox drops a second copy, so a message is handled once even when both copies arrive. Unlike a
/// handler's messages these are not part of any transaction: to make a retried request (e.g. an HTTP
/// request retried by its client) start one process, pass a message id derived from the request.
///
/// Inside a span (`ServiceContext.current`), with a tracer bootstrapped (or passed), each message gets a
/// "publish <destination>" producer span and carries its context in `traceparent`, so the endpoint's
/// spans for it join the caller's trace. A `traceparent` passed in `headers` is the span's parent instead.
public struct MessageSession: Sendable {
    public let connection: AMQPConnection
    /// The `app_id` property of every message, e.g. the sending application's name.
    public var appId: String?
    /// How long a call keeps waiting for a lost connection and sending again before it gives up with
    /// `.notConfirmed` (zero: one attempt).
    public var resendWindow: Duration
    let tracer: (any Tracer)?
    let logger: Logger

    /// A session over `connection` (which stays the caller's to close). `tracer`: by default the one
    /// bootstrapped in `InstrumentationSystem`.
    public init(connection: AMQPConnection, appId: String? = nil, resendWindow: Duration = .seconds(30),
                tracer: (any Tracer)? = nil, logger: Logger = Logger(label: "saga.session")) {
        self.connection = connection
        self.appId = appId
        self.resendWindow = resendWindow
        let tracer = tracer ?? InstrumentationSystem.tracer
        self.tracer = tracer is NoOpTracer ? nil : tracer
        self.logger = logger
    }

    /// Connects to the broker at `url` (an AMQP URI, see `AMQPConfiguration`) and returns a session over
    /// that connection; `close()` closes it. Throws the transport's `AMQPError` when the first attempt
    /// fails (later losses are recovered).
    public static func connect(url: String, connectionName: String? = nil, appId: String? = nil,
                               resendWindow: Duration = .seconds(30), tracer: (any Tracer)? = nil,
                               logger: Logger = Logger(label: "saga.session")) async throws -> MessageSession {
        // "AMQP connected" at debug: a client that connects per request logged it at info every time.
        let connection = try await AMQPConnection.connect(url: url, connectionName: connectionName,
                                                          connectedLevel: .debug, logger: logger)
        return MessageSession(connection: connection, appId: appId, resendWindow: resendWindow, tracer: tracer,
                              logger: logger)
    }

    /// Closes the connection.
    public func close() async {
        await connection.close()
    }

    // MARK: Sending

    /// Sends `message` as a command to `queue` (through the default exchange, mandatory: a missing queue is
    /// `.unroutable`) and returns its message id: `messageId`, or a new UUID. `replyTo` names where
    /// replies go (a saga's `reply` answers there); `headers` travel as AMQP string headers.
    @discardableResult
    public func send<M: Message>(_ message: M, to queue: String, messageId: String? = nil,
                                 correlationId: String? = nil, replyTo: String? = nil,
                                 headers: [String: String] = [:]) async throws(MessageSessionError) -> String {
        let request = try Self.command(message, to: queue, messageId: messageId, correlationId: correlationId,
                                       replyTo: replyTo, headers: headers, appId: appId)
        try await send([request])
        return request.message.properties.messageId ?? ""
    }

    /// Publishes `event` to `exchange` with `routingKey` (by default its message type, as a saga's
    /// `publish` does) and returns its message id. Not mandatory, as events are: with no queue bound the
    /// broker drops it. A missing exchange is `.exchangeNotFound`.
    @discardableResult
    public func publish<M: Message>(_ event: M, to exchange: String, routingKey: String? = nil,
                                    messageId: String? = nil, correlationId: String? = nil,
                                    headers: [String: String] = [:]) async throws(MessageSessionError) -> String {
        let request = try Self.event(event, to: exchange, routingKey: routingKey, messageId: messageId,
                                     correlationId: correlationId, headers: headers, appId: appId)
        try await send([request])
        return request.message.properties.messageId ?? ""
    }

    /// Sends many messages (built with `command` or `event`) at once and waits for all their confirms.
    /// Throws for the first one that failed; the others may have been delivered (sending all of them again
    /// is safe, their ids are kept).
    public func send(_ requests: [PublishRequest]) async throws(MessageSessionError) {
        var requests = requests
        let spans = startSpans(&requests)
        var failure: MessageSessionError?
        var confirmed = Set<Int>()
        defer {
            // As the pipeline's publish spans: every message not confirmed is an error, also those of a
            // batch whose error names another message (they were not sent again).
            for (index, span) in spans {
                if let failure, failure.messageId == requests[index].message.properties.messageId {
                    span.recordError(failure)
                    span.setStatus(SpanStatus(code: .error))
                } else if let failure, !confirmed.contains(index) {
                    span.setStatus(SpanStatus(code: .error, message: "not confirmed: the call failed for message "
                        + "\(failure.messageId) (\(failure.code))"))
                }
                span.end()
            }
        }
        let deadline = ContinuousClock.now + resendWindow
        var pending = Array(requests.indices)
        while !pending.isEmpty {
            let outcomes = await connection.publish(pending.map { requests[$0] })
            var again: [Int] = []
            var lastError: AMQPError?
            // A message failed only by another message's channel close, with no time left to send it again.
            var failedForAnother: MessageSessionError?
            // All of them first: the loop below stops at the first failure.
            for (index, outcome) in zip(pending, outcomes) where outcome.isConfirmed { confirmed.insert(index) }
            for (index, outcome) in zip(pending, outcomes) {
                switch verdict(on: outcome, of: requests[index], timeLeft: ContinuousClock.now < deadline) {
                case .confirmed:
                    continue
                case .sendAgain(let error):
                    again.append(index)
                    lastError = error
                case .failedForAnother(let error):
                    failedForAnother = failedForAnother ?? error
                case .failed(let error):
                    failure = error
                    throw error
                }
            }
            if let failedForAnother {
                failure = failedForAnother
                throw failedForAnother
            }
            pending = again
            guard let lastError, let first = again.first else { continue }
            logger.info("connection or publishing channel lost before the broker confirmed; sending again under the same message id",
                        metadata: ["message_id": "\(requests[first].message.properties.messageId ?? "")",
                                   "message_type": "\(requests[first].message.properties.type ?? "")",
                                   "count": "\(again.count)", "error": "\(lastError)"])
            do {
                try await connection.waitUntilConnected(timeout: max(.zero, deadline - ContinuousClock.now))
            } catch let error as AMQPError where error.code == .closed {
                failure = Self.error(.closed, requests[first], "the session's connection was closed by this client", error)
                throw failure!
            } catch is CancellationError {
                failure = Self.error(.cancelled, requests[first],
                                     "the task was cancelled while waiting for the connection to come back" + Self.sendAgain,
                                     lastError)
                throw failure!
            } catch let error as AMQPError where !error.isTransient {
                // The broker refuses the reconnect (a changed password, a deleted vhost): no resend can get
                // through until an operator fixes that, as the endpoint's readiness says in the same case.
                failure = Self.error(.notConfirmed, requests[first],
                                     "not confirmed within \(resendWindow): the broker refuses the reconnect (\(error)); "
                                         + "an operator must fix that before a resend can get through", error)
                throw failure!
            } catch {
                failure = Self.error(.notConfirmed, requests[first],
                                     "not confirmed within \(resendWindow): \(error)" + Self.sendAgain,
                                     error as? AMQPError ?? lastError)
                throw failure!
            }
        }
    }

    /// What became of one publish, as `send` acts on it.
    enum Verdict {
        case confirmed
        /// Lost with the connection or with a channel another message closed: send it again (same id).
        case sendAgain(AMQPError)
        /// Failed by another message's channel close with no time left: reported after that message's own
        /// error, if that one is in the same call.
        case failedForAnother(MessageSessionError)
        case failed(MessageSessionError)
    }

    /// The verdict on `outcome` of `request`; `timeLeft`: whether the resend window still runs.
    func verdict(on outcome: PublishOutcome, of request: PublishRequest, timeLeft: Bool) -> Verdict {
        switch outcome {
        case .confirmed:
            return .confirmed
        case .returned(let code, let text):
            return .failed(Self.error(.unroutable, request,
                                      "the broker could not route it (\(code) \(text)): no queue of that name; "
                                          + "declare the queue (an endpoint declares its input queues when it "
                                          + "starts), nothing was taken"))
        case .nacked:
            // Said why: "refused (basic.nack)" alone sent callers looking at permissions and the message,
            // when an operator's length limit on the queue is by far the usual cause.
            return .failed(Self.error(.nacked, request,
                                      "the broker refused it (basic.nack): most likely a queue it goes to is full "
                                          + "(a max-length or max-length-bytes limit with overflow reject-publish, "
                                          + "often set by a policy); send it again with the same message id once "
                                          + "there is room"))
        case .failed(let error) where Self.closedForAnother(error, request):
            // Not this message's fault: it may or may not have been taken, the next publish opens the
            // channel again. With no time left to send it again (`resendWindow` zero, or over): not
            // confirmed, not the other exchange's error under this destination.
            guard timeLeft else {
                return .failedForAnother(Self.error(
                    .notConfirmed, request,
                    "not confirmed: the broker closed the publishing channel for another message "
                        + "(\(error.message)) and the resend window (\(resendWindow)) is over; it may or "
                        + "may not have been taken, send it again with the same message id", error))
            }
            return .sendAgain(error)
        case .failed(let error) where error.code == .channelClosed && error.replyCode == 404:
            return .failed(Self.error(.exchangeNotFound, request,
                                      "the exchange does not exist (\(error.message)); declare the exchange, "
                                          + "nothing was taken", error))
        case .failed(let error) where error.code == .channelClosed && error.replyCode == 403:
            return .failed(Self.error(.accessRefused, request,
                                      "the broker refused it (\(error.message)); grant write permission", error))
        case .failed(let error) where error.code == .invalidArgument:
            return .failed(Self.error(.invalidMessage, request, "AMQP cannot carry it: \(error.message)", error))
        case .failed(let error) where error.code == .closed:
            return .failed(Self.error(.closed, request, "the session's connection was closed by this client", error))
        case .failed(let error) where error.code == .cancelled:
            return .failed(Self.error(.cancelled, request,
                                      "the task was cancelled before the broker confirmed" + Self.sendAgain, error))
        case .failed(let error) where Self.isLostConnection(error) && !connection.recovery.isEnabled:
            return .failed(Self.error(.notConfirmed, request,
                                      "not confirmed, and the connection does not recover (recovery is disabled): \(error)"
                                          + Self.sendAgain + " on another connection", error))
        case .failed(let error) where Self.isLostConnection(error) && timeLeft:
            return .sendAgain(error)
        case .failed(let error):
            return .failed(Self.error(.notConfirmed, request, "not confirmed: \(error)" + Self.sendAgain, error))
        }
    }

    /// What to do about a message whose fate is unknown, as the reason's end.
    static let sendAgain = "; it may or may not have been taken: send it again with the same message id"

    /// A lost or recovering connection: the message may be sent again once it is back. (A connection this
    /// client closed, or a cancelled task, is not.) Also what the endpoint's set-up at start waits out.
    static func isLostConnection(_ error: AMQPError) -> Bool {
        [.connectionLost, .notConnected, .connectionClosed].contains(error.code)
    }

    /// The broker closed the publishing channel for another message: every message not confirmed on that
    /// channel, of this call or of a concurrent one on the same connection, fails with that message's
    /// close ("NOT_FOUND - no exchange 'x' in vhost 'v'", "ACCESS_REFUSED - write access to exchange 'x' …").
    /// Reported as this message's error it named the wrong message and destination (an event's missing
    /// exchange as a command's) and said it was not taken. A close that names no exchange cannot be told
    /// apart, and stays this message's.
    static func closedForAnother(_ error: AMQPError, _ request: PublishRequest) -> Bool {
        guard error.code == .channelClosed, error.message.contains("exchange '") else { return false }
        // RabbitMQ names the default exchange amq.default.
        let exchange = request.exchange.isEmpty ? "amq.default" : request.exchange
        return !error.message.contains("exchange '\(exchange)'")
    }

    static func error(_ code: MessageSessionError.Code, _ request: PublishRequest, _ reason: String,
                      _ underlying: AMQPError? = nil) -> MessageSessionError {
        MessageSessionError(code, messageId: request.message.properties.messageId ?? "",
                            messageType: request.message.properties.type ?? "", destination: describe(request),
                            reason: reason, underlying: underlying)
    }

    static func describe(_ request: PublishRequest) -> String {
        request.exchange.isEmpty
            ? "queue '\(request.routingKey)'" : "exchange '\(request.exchange)' with routing key '\(request.routingKey)'"
    }

    private func startSpans(_ requests: inout [PublishRequest]) -> [(Int, any Span)] {
        guard let tracer else { return [] }
        let current = ServiceContext.current ?? .topLevel
        return requests.indices.map { index in
            // A traceparent the caller put in the headers (an HTTP request's, forwarded by an application
            // with no span of its own) is the parent, as a header a handler sets itself wins there: the
            // publish span wrote its own context over it, and the message left in a new trace.
            // (One the tracer cannot read leaves the current context the parent.)
            var parent = current
            if let headers = requests[index].message.properties.headers, headers["traceparent"] != nil {
                tracer.extract(headers, into: &parent, using: AMQPHeaderExtractor())
            }
            return (index, PipelineTracing.startPublishSpan(&requests[index], parent: parent, tracer: tracer))
        }
    }
}
