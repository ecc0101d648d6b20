import Foundation

/// Where each request of a `RequestClient` is, by correlation key, between being registered (before it is
/// sent, so that a quick reply is not missed) and its reply, timeout, cancellation or the client's close;
/// and the watches of requests still waiting for their confirm, resumed when their reply comes first.
///
/// A value the client's actor owns: its isolation guards it. The client does the I/O (sending, the reply
/// consumer, the timers) and tells this what happened; this decides which caller is resumed, and with what.
/// A token tells a request from an earlier one under the same key (a request sent again under its id).
struct RequestWaits {
    typealias Outcome = Result<Reply, MessageSessionError>

    private enum Waiter {
        case sent(token: Int, RequestClient.Request)
        case replied(token: Int, Reply)
        case cancelled(token: Int, RequestClient.Request)
        case waiting(token: Int, RequestClient.Request, CheckedContinuation<Outcome, Never>, timer: Task<Void, Never>)

        var token: Int {
            switch self {
            case .sent(let token, _), .replied(let token, _), .cancelled(let token, _), .waiting(let token, _, _, _): token
            }
        }
    }

    private var waiting: [String: Waiter] = [:]
    /// Requests still waiting for their confirm, by key: resumed when their reply comes first.
    private var replyWatches: [String: (token: Int, continuation: CheckedContinuation<Void, Never>)] = [:]
    private var nextToken = 0

    /// Registers `request` under `key` before it is sent and returns its token; nil when another request
    /// waits under that key.
    mutating func register(_ key: String, _ request: RequestClient.Request) -> Int? {
        guard waiting[key] == nil else { return nil }
        nextToken += 1
        waiting[key] = .sent(token: nextToken, request)
        return nextToken
    }

    /// Whether the reply of the request `token` under `key` is in.
    func hasReply(_ key: String, _ token: Int) -> Bool {
        if case .replied(token, _) = waiting[key] { return true }
        return false
    }

    /// Forgets the request `token` under `key` (its send failed) and returns its reply if that came
    /// meanwhile (while the failure was worked out): the reply answers it all the same.
    @discardableResult
    mutating func remove(_ key: String, _ token: Int) -> Reply? {
        guard let waiter = waiting[key], waiter.token == token else { return nil }
        waiting[key] = nil
        guard case .replied(_, let reply) = waiter else { return nil }
        return reply
    }

    // MARK: Watching for a reply while the request is sent

    /// Resumes `continuation` when the reply for `key` comes (or `endWatch`, `endAll`).
    mutating func watch(_ key: String, _ token: Int, _ continuation: CheckedContinuation<Void, Never>) {
        replyWatches[key] = (token, continuation)
    }

    mutating func endWatch(_ key: String, _ token: Int) {
        guard let watch = replyWatches[key], watch.token == token else { return }
        replyWatches[key] = nil
        watch.continuation.resume()
    }

    // MARK: Waiting for the reply once sent

    /// The request was sent: ends `continuation` at once with a reply already in, a cancellation that came
    /// while it was sent, or `.closed` (closed while it was sent, `closedReason`); otherwise it waits, and
    /// `timer` (made here) ends it at its deadline.
    mutating func wait(_ key: String, _ token: Int, _ sent: RequestClient.Request,
                       _ continuation: CheckedContinuation<Outcome, Never>, closedReason: String,
                       timer: () -> Task<Void, Never>) {
        switch waiting[key] {
        case .replied(token, let reply):
            waiting[key] = nil
            continuation.resume(returning: .success(reply))
        case .cancelled(token, let request):
            waiting[key] = nil
            continuation.resume(returning: .failure(request.cancelled()))
        case .sent(token, let request):
            waiting[key] = .waiting(token: token, request, continuation, timer: timer())
        default:
            // Closed while it was sent.
            continuation.resume(returning: .failure(sent.error(.closed, "the request client was closed while the "
                + "request was sent (\(closedReason))")))
        }
    }

    /// The request's deadline passed with no reply: true when that ended it (`.noReply`).
    mutating func expire(_ key: String, _ token: Int, _ timeout: Duration) -> Bool {
        guard case .waiting(token, let request, let continuation, _) = waiting[key] else { return false }
        waiting[key] = nil
        continuation.resume(returning: .failure(
            request.error(.noReply, "no reply within \(timeout): the request may or may not have been handled")))
        return true
    }

    /// The caller's task was cancelled: ends the wait, or marks a request still being sent so that its wait
    /// ends as soon as it begins. True when the request ends (or will end) as `.cancelled` without its reply.
    mutating func cancel(_ key: String, _ token: Int) -> Bool {
        switch waiting[key] {
        case .sent(token, let request):
            waiting[key] = .cancelled(token: token, request)
            return true
        case .waiting(token, let request, let continuation, let timer):
            timer.cancel()
            waiting[key] = nil
            continuation.resume(returning: .failure(request.cancelled()))
            return true
        default:
            return false
        }
    }

    /// A reply with `key` came: answers the request waiting under it (or keeps the reply for one still being
    /// sent). False when no request waits under that key.
    mutating func deliver(_ key: String, _ reply: (RequestClient.Request) -> Reply) -> Bool {
        switch waiting[key] {
        case .sent(let token, let request):
            waiting[key] = .replied(token: token, reply(request))
            endWatch(key, token)
            return true
        case .waiting(_, let request, let continuation, let timer):
            timer.cancel()
            waiting[key] = nil
            continuation.resume(returning: .success(reply(request)))
            return true
        default:
            return false
        }
    }

    /// Ends every waiting request with `.closed`, also those still waiting for their confirm: without
    /// that, a request whose confirm was held back (a resource alarm) waited out its whole timeout after
    /// `close()`, for a reply that could no longer come, and then threw `.notConfirmed`.
    mutating func endAll(_ reason: String) {
        for waiter in waiting.values {
            guard case .waiting(_, let request, let continuation, let timer) = waiter else { continue }
            timer.cancel()
            continuation.resume(returning: .failure(request.error(.closed, reason)))
        }
        waiting.removeAll()
        let watches = replyWatches.values
        replyWatches.removeAll()
        for watch in watches { watch.continuation.resume() }
    }
}
