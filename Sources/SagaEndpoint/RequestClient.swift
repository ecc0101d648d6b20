import AMQPTransport
import Foundation
public import Logging
public import Sagas

/// Request/response from outside a handler (MassTransit's request client, NServiceBus's callbacks): sends
/// a command with `reply_to` set to a reply queue of this client and waits for the reply a handler sends
/// with `context.reply`, matched by `correlation_id`.
///
/// The reply queue is the client's own, made by `start`: not exclusive and not auto-deleted, so it and the
/// replies in it outlive a lost connection (recovery declares it again and consumes again), with
/// `x-expires` so that RabbitMQ deletes it once no client has used it for that long (a client that crashed
/// leaves nothing behind for ever). A reply that comes after its request ended without one (not confirmed
/// in time, no reply in time, cancelled) is kept for the next request under that message id (the endpoint's
/// inbox would drop that copy unanswered: `UnansweredRequests`); one that comes twice is dropped.
///
/// Requests are commands like any other (persistent, confirmed, sent again under the same id while the
/// connection is lost): the endpoint's inbox deduplicates them, so a request sent again under the same
/// message id is not handled, and not answered, a second time (unless this client kept the first one's late
/// reply). Replies are not stored: a client that stops (or crashes) while a request waits does not get its
/// reply later. For a reply that must not be lost, let a saga of your own receive it.
public actor RequestClient {
    public let session: MessageSession
    /// The queue replies come to (the requests' `reply_to`).
    public nonisolated let replyQueue: String
    let logger: Logger
    private let declaration: QueueDeclaration
    private var waits = RequestWaits()
    /// Requests that ended without their reply, and replies that came for them later.
    private var unanswered = UnansweredRequests()
    private var consumer: AMQPConsumer?
    private var consuming: Task<Void, Never>?
    private var isClosed = false
    /// Why requests are refused once closed.
    private var closedReason = "the request client was closed"

    /// A request, as its errors and its reply name it.
    struct Request: Sendable {
        var messageId: String
        var type: String
        var destination: String

        func error(_ code: MessageSessionError.Code, _ reason: String) -> MessageSessionError {
            MessageSessionError(code, messageId: messageId, messageType: type, destination: destination, reason: reason)
        }

        func cancelled() -> MessageSessionError {
            error(.cancelled, "the task was cancelled while the request waited for its reply; it may or may not "
                      + "have been handled")
        }
    }

    private init(session: MessageSession, declaration: QueueDeclaration, logger: Logger) {
        self.session = session
        self.replyQueue = declaration.name
        self.declaration = declaration
        self.logger = logger
    }

    /// Declares the reply queue (`replyQueue`, by default `<app id or "requests">.replies.<uuid>`) with
    /// `x-expires` = `expiresAfter` and starts consuming it. Throws the transport's `AMQPError` when the
    /// broker refuses (e.g. a queue of that name exists with other arguments: 406), and
    /// `.invalidConfiguration` for an empty `replyQueue`, and when another client consumes a queue of that
    /// name already: each client needs one of its own (two replicas of an application configured with one
    /// name took each other's replies and dropped them, their requests ending as `.noReply`).
    public static func start(session: MessageSession, replyQueue: String? = nil,
                             expiresAfter: Duration = .seconds(300), prefetch: UInt16 = 100,
                             logger: Logger? = nil) async throws -> RequestClient {
        // A queue name is a short string: a long app id is cut (the UUID keeps the name unique).
        let prefix = ProtocolLimits.truncated(session.appId ?? "requests", bytes: 200)
        let name = replyQueue ?? "\(prefix).replies.\(MessageSession.newMessageId())"
        // An empty name (an unset setting) made the broker declare a server-named queue (left until it
        // expired), and then failed the consume with "NOT_FOUND - no previously declared queue"; its
        // requests would have carried an empty reply_to, which no endpoint can answer.
        guard !name.isEmpty else {
            throw AMQPError(.invalidConfiguration, message: "the reply queue name is empty (replyQueue \"\"): "
                + "requests would carry an empty reply_to, which an endpoint cannot answer; name a queue, or "
                + "leave replyQueue out for a unique name", operation: "RequestClient.start")
        }
        let milliseconds = max(1, expiresAfter.components.seconds * 1000
            + expiresAfter.components.attoseconds / 1_000_000_000_000_000)
        // Durable: RabbitMQ deprecated transient queues that are not exclusive (4.3 refuses them by default,
        // closing the connection), and the replies in it then also outlive a broker restart. `x-expires`
        // deletes it once no client has used it for that long.
        let declaration = QueueDeclaration(name: name, durable: true, exclusive: false, autoDelete: false,
                                           arguments: ["x-expires": .int64(milliseconds)])
        let client = RequestClient(session: session, declaration: declaration, logger: logger ?? session.logger)
        let state = try await session.connection.declareQueue(declaration)
        guard state.consumerCount == 0 else {
            throw AMQPError(.invalidConfiguration, message: "the reply queue '\(name)' is consumed by another client "
                + "already (\(state.consumerCount)); each request client needs a reply queue of its own (leave "
                + "replyQueue out for a unique name)", operation: "RequestClient.start")
        }
        try await client.startConsuming(prefetch: prefetch)
        // Two clients starting at once both saw no consumer at the declare: looked at again now that this
        // one consumes, both may refuse (safe), but never both run.
        let consumers = try await session.connection.checkQueue(name).consumerCount
        guard consumers <= 1 else {
            await client.abandon()
            throw AMQPError(.invalidConfiguration, message: "the reply queue '\(name)' is consumed by another client "
                + "too (\(consumers) consumers); each request client needs a reply queue of its own (leave "
                + "replyQueue out for a unique name)", operation: "RequestClient.start")
        }
        return client
    }

    /// Sends `message` to `queue` as a command whose `reply_to` is this client's reply queue and returns
    /// its reply, of whatever type. Its `correlation_id` is its message id, which the reply carries back;
    /// two requests waiting at once may not share it. (A correlation id of the caller's choosing, used again
    /// after a timeout, got the late reply of the earlier request.)
    ///
    /// Errors (`MessageSessionError`): those of `MessageSession.send` (the request was not delivered), and
    /// `.notConfirmed` when the broker did not confirm it within `timeout` (a resource alarm); `.noReply`
    /// when no reply came within `timeout` (counted from the call, sending included); `.cancelled` when the
    /// task is cancelled while waiting; `.closed` after `close()`.
    public func request<M: Message>(_ message: M, to queue: String, timeout: Duration = .seconds(30),
                                    messageId: String? = nil,
                                    headers: [String: String] = [:]) async throws(MessageSessionError) -> Reply {
        let deadline = ContinuousClock.now + min(timeout, Self.longestWait)
        let id = messageId ?? MessageSession.newMessageId()
        let key = id
        let request = Request(messageId: id, type: M.messageType, destination: "queue '\(queue)'")
        guard !isClosed else { throw request.error(.closed, closedReason) }
        guard let token = waits.register(key, request) else {
            throw request.error(.invalidMessage, "another request with message id '\(key)' is waiting for its reply")
        }
        if let kept = unanswered.take(key) {
            // An earlier request under this id was taken and answered after it ended: that is the answer
            // (the endpoint's inbox would drop this copy, and not answer it).
            waits.remove(key, token)
            logger.info("request answered by the reply kept for an earlier request under its message id",
                        metadata: ["queue": "\(replyQueue)", "correlation_id": "\(key)",
                                   "message_id": "\(kept.messageId)", "message_type": "\(kept.type)"])
            return Reply(type: kept.type, messageId: kept.messageId, correlationId: kept.correlationId, body: kept.body,
                         properties: kept.properties, request: request)
        }
        if case .failure(let error) = await send(message, to: queue, request, key: key, token: token, headers: headers,
                                                  before: deadline, timeout: timeout) {
            // A reply that came while the failure was worked out answers it, whatever its confirm did.
            if let reply = waits.remove(key, token) { return reply }
            if [.notConfirmed, .cancelled].contains(error.code), !isClosed { unanswered.remember(key) }
            throw error
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                wait(key, token, request, continuation, deadline: deadline, timeout: timeout)
            }
        } onCancel: {
            Task { await self.cancelWaiting(key, token) }
        }
        return try result.get()
    }

    /// The longest a request waits: a larger `timeout` (`.seconds(Int64.max)` for "no timeout") put its deadline
    /// past what the clock can sleep until, and `Task.sleep(until:)` trapped, ending the caller's process. A
    /// year outlasts any caller, so a larger timeout still means "never" in practice (as the CLI reads its own).
    static let longestWait: Duration = .seconds(365 * 86_400)

    /// Sends the request, waiting for its confirm until `deadline`: a resource alarm holds confirms back for
    /// as long as it lasts, and the request waited that long, whatever its timeout. A reply that comes first
    /// ends the wait: it proves the request was taken (a responder may answer before the broker confirms a
    /// persistent request, which it does once the request is on disk or acknowledged).
    private func send<M: Message>(_ message: M, to queue: String, _ request: Request, key: String, token: Int,
                                  headers: [String: String], before deadline: ContinuousClock.Instant,
                                  timeout: Duration) async -> Result<Void, MessageSessionError> {
        let (session, replyQueue) = (session, replyQueue)
        let first: SendEvent = await withTaskGroup(of: SendEvent.self) { group in
            group.addTask {
                do {
                    try await session.send(message, to: queue, messageId: request.messageId, correlationId: key,
                                           replyTo: replyQueue, headers: headers)
                    return .sent(.success(()))
                } catch let error as MessageSessionError {
                    return .sent(.failure(error))
                } catch {
                    return .sent(.failure(request.error(.notConfirmed, "\(error)")))
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                return .deadline
            }
            group.addTask {
                switch await self.watchForReply(key, token) {
                case .replied: .replied
                case .closed: .closed
                case .stopped: .watchStopped
                }
            }
            var first = SendEvent.deadline
            // A watch stops without a reply or a close only when the task is cancelled: the send then ends too.
            while let event = await group.next() {
                if case .watchStopped = event { continue }
                first = event
                break
            }
            group.cancelAll()
            self.endReplyWatch(key, token)
            return first
        }
        // Whatever ended the wait, a reply already in hand settles it.
        if waits.hasReply(key, token) { return .success(()) }
        switch first {
        case .sent(let result):
            return result
        case .replied:
            return .success(())
        case .closed:
            // No reply can come: the reply queue is gone (or the connection for good).
            return .failure(request.error(.closed, "the request client was closed while the request was sent "
                + "(\(closedReason)); it may or may not have been taken"))
        case .deadline, .watchStopped:
            if Task.isCancelled { return .failure(request.cancelled()) }
            let blocked = await session.connection.blockedReason.map { " (the broker blocks publishing: \($0))" } ?? ""
            return .failure(request.error(.notConfirmed, "the broker did not confirm the request within \(timeout)"
                + "\(blocked); it may or may not have been taken"))
        }
    }

    private enum SendEvent: Sendable {
        case sent(Result<Void, MessageSessionError>)
        case deadline
        case replied
        /// The client was closed (`close()`, or its connection ended for good) while the request was sent.
        case closed
        case watchStopped
    }

    private enum WatchEnd {
        case replied, closed, stopped
    }

    /// Returns once the reply for `key` is in, once the client is closed (`RequestWaits.endAll`), or when
    /// the wait ends otherwise (`endReplyWatch`).
    private func watchForReply(_ key: String, _ token: Int) async -> WatchEnd {
        if waits.hasReply(key, token) { return .replied }
        if isClosed { return .closed }
        await withCheckedContinuation { continuation in
            // Cancelled before this ran: `endReplyWatch` has been and found nothing to resume.
            guard !Task.isCancelled else { return continuation.resume() }
            waits.watch(key, token, continuation)
        }
        if waits.hasReply(key, token) { return .replied }
        return isClosed ? .closed : .stopped
    }

    private func endReplyWatch(_ key: String, _ token: Int) {
        waits.endWatch(key, token)
    }

    /// Sends a request and decodes its reply as an `R`: a reply of another type is `.unexpectedReply`.
    public func request<M: Message, R: Message>(_ message: M, to queue: String, expecting: R.Type,
                                                timeout: Duration = .seconds(30), messageId: String? = nil,
                                                headers: [String: String] = [:]) async throws(MessageSessionError) -> R {
        try await request(message, to: queue, timeout: timeout, messageId: messageId, headers: headers).decode(R.self)
    }

    /// Stops consuming, deletes the reply queue (replies still on their way are returned to their senders,
    /// whose endpoints handle them as unroutable), and ends every waiting request with `.closed`. The
    /// session's connection stays open (it is the caller's).
    public func close() async {
        guard !isClosed else { return }
        isClosed = true
        consuming?.cancel()
        try? await consumer?.cancel()
        waits.endAll("the request client was closed while the request waited for its reply")
        unanswered.removeAll()
        _ = try? await session.connection.deleteQueue(replyQueue)
    }

    /// Stops consuming without deleting the queue (another client's, as it turned out at start).
    private func abandon() async {
        isClosed = true
        consuming?.cancel()
        try? await consumer?.cancel()
    }

    // MARK: Waiting

    private func wait(_ key: String, _ token: Int, _ sent: Request,
                      _ continuation: CheckedContinuation<RequestWaits.Outcome, Never>,
                      deadline: ContinuousClock.Instant, timeout: Duration) {
        waits.wait(key, token, sent, continuation, closedReason: closedReason) {
            Task { [weak self] in
                try? await Task.sleep(until: deadline)
                guard !Task.isCancelled else { return }
                await self?.expire(key, token, timeout)
            }
        }
    }

    // Remembered as they end, not when their callers resume: a reply that comes in between is kept.
    private func expire(_ key: String, _ token: Int, _ timeout: Duration) {
        if waits.expire(key, token, timeout) { unanswered.remember(key) }
    }

    private func cancelWaiting(_ key: String, _ token: Int) {
        if waits.cancel(key, token) { unanswered.remember(key) }
    }

    // MARK: Consuming replies

    private func startConsuming(prefetch: UInt16) async throws {
        let consumer = try await session.connection.consume(queue: replyQueue, prefetch: prefetch)
        self.consumer = consumer
        consuming = Task { [weak self] in await self?.readReplies(consumer, prefetch: prefetch) }
    }

    /// Reads the reply queue until closed. When the broker ends the consumer (the queue was deleted under
    /// it), declares the queue again and consumes again: waiting requests whose replies were in it get
    /// `.noReply` at their timeout. When the session's connection is closed (by its owner, or lost for
    /// good), no reply can come: waiting requests end with `.closed`, and so does every later one.
    private func readReplies(_ consumer: AMQPConsumer, prefetch: UInt16) async {
        do {
            for try await delivery in consumer.deliveries {
                deliver(delivery)
                try? await session.connection.ack(delivery.tag)
            }
            // Ended without an error: cancelled by `close()`, or the connection was closed.
            guard !isClosed else { return }
            end(because: "the session's connection was closed")
            return
        } catch let error as AMQPError where error.code != .consumerCancelled {
            guard !isClosed else { return }
            end(because: "the session's connection ended (\(error))")
            return
        } catch {
            guard !isClosed, !Task.isCancelled else { return }
            logger.warning("request client's reply consumer ended; declaring its reply queue again",
                           metadata: ["queue": "\(replyQueue)", "error": "\(error)"])
        }
        var attempt = 0
        while !isClosed, !Task.isCancelled {
            try? await Task.sleep(for: RecoveryPolicy.default.delay(attempt: attempt))
            attempt += 1
            guard !isClosed, !Task.isCancelled else { return }
            do {
                try await session.connection.declareQueue(declaration)
                try await startConsuming(prefetch: prefetch)
                return
            } catch let error as AMQPError where error.code == .closed {
                end(because: "the session's connection was closed")
                return
            } catch let error as AMQPError where error.code == .channelClosed {
                // Refused (403, 406, 405: another client's exclusive queue): trying again changes nothing,
                // and requests sent meanwhile would name a reply queue nobody reads.
                end(because: "its reply queue cannot be declared again (\(error))")
                return
            } catch {
                logger.warning("request client could not consume its reply queue again; trying again",
                               metadata: ["queue": "\(replyQueue)", "error": "\(error)", "attempt": "\(attempt)"])
            }
        }
    }

    private func end(because reason: String) {
        isClosed = true
        closedReason = reason
        logger.notice("request client stopped: \(reason)", metadata: ["queue": "\(replyQueue)"])
        waits.endAll(reason + " while the request waited for its reply")
        unanswered.removeAll()
    }

    private func deliver(_ delivery: AMQPDelivery) {
        let properties = delivery.properties
        let key = properties.correlationId ?? ""
        func reply(to request: Request) -> Reply {
            Reply(type: properties.type ?? "", messageId: properties.messageId ?? "", correlationId: key,
                  body: delivery.message.body, properties: properties, request: request)
        }
        if waits.deliver(key, reply(to:)) { return }
        // Kept with a stand-in for its request: the request sent again under its id takes it as its own.
        if unanswered.keep(key, reply(to: Request(messageId: key, type: "", destination: ""))) {
            logger.info("late reply kept for a request sent again under its message id (its request ended without it)",
                        metadata: ["queue": "\(replyQueue)", "delivery_tag": "\(delivery.tag.value)",
                                   "correlation_id": "\(key)", "message_id": "\(properties.messageId ?? "")",
                                   "message_type": "\(properties.type ?? "")"])
        } else {
            logger.info("reply for no waiting request dropped (it came twice, or its request was answered or forgotten)",
                        metadata: ["queue": "\(replyQueue)", "delivery_tag": "\(delivery.tag.value)",
                                   "correlation_id": "\(key)", "message_id": "\(properties.messageId ?? "")",
                                   "message_type": "\(properties.type ?? "")"])
        }
    }
}
