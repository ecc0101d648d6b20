import Foundation

/// Requests of a `RequestClient` that ended without their reply but may have been taken and answered all
/// the same: `.notConfirmed` (the broker confirmed nothing in time), `.noReply` and `.cancelled`. A reply
/// that comes for one later is kept, and answers the next request sent under that message id.
///
/// Without this the late reply was dropped, and the request sent again under its id (as `.notConfirmed`
/// says to) got none: the endpoint's inbox drops the copy without running the handler, and does not send
/// the confirmed reply again. The late reply is the only answer there is, as a MassTransit or NServiceBus
/// user would expect of a request that was handled: it answers the request, whatever its confirm did.
///
/// A value the client's actor owns (its isolation guards it). Bounded: the oldest are forgotten first,
/// by count and by the bytes of the kept replies' bodies (bounded by count alone, 1000 late replies of a
/// few MiB each were held until taken).
struct UnansweredRequests {
    /// How many are remembered, kept replies included (a reply's body is held until a request takes it
    /// or it is forgotten).
    static let limit = 1000
    /// The most bytes of kept reply bodies: past it the oldest kept replies are forgotten, and a reply
    /// larger than this alone is not kept.
    static let byteLimit = 16 * 1024 * 1024

    private enum Entry {
        case awaiting
        case replied(Reply)
    }

    private var entries: [String: Entry] = [:]
    /// The keys of `entries`, oldest first.
    private var order: [String] = []
    /// The bytes of the kept replies' bodies.
    private(set) var keptBytes = 0

    /// The request under `key` ended without its reply. Remembered already, it is the same request (a new
    /// one under the key takes the entry first), remembered at its cancel and again when its send then
    /// failed: a reply kept in between stays.
    mutating func remember(_ key: String) {
        guard entries[key] == nil else { return }
        entries[key] = .awaiting
        order.append(key)
        while order.count > Self.limit { forget(order.removeFirst()) }
    }

    /// A reply with `key` came while no request waited for it: kept if its request ended unanswered (true),
    /// dropped otherwise (a second reply, or one for a request that was never this client's).
    mutating func keep(_ key: String, _ reply: Reply) -> Bool {
        guard case .awaiting = entries[key], reply.body.count <= Self.byteLimit else { return false }
        entries[key] = .replied(reply)
        keptBytes += reply.body.count
        // The oldest kept replies other than this one go first; awaiting entries hold no body.
        var index = 0
        while keptBytes > Self.byteLimit, index < order.count {
            let candidate = order[index]
            if candidate != key, case .replied = entries[candidate] {
                order.remove(at: index)
                forget(candidate)
            } else {
                index += 1
            }
        }
        return true
    }

    /// A new request under `key`: the reply kept for it, if any. Either way the key is forgotten (the new
    /// request is answered by a reply that comes, and remembered again if it ends unanswered too).
    mutating func take(_ key: String) -> Reply? {
        guard let entry = entries[key] else { return nil }
        order.removeAll { $0 == key }
        forget(key)
        guard case .replied(let reply) = entry else { return nil }
        return reply
    }

    mutating func removeAll() {
        entries.removeAll()
        order.removeAll()
        keptBytes = 0
    }

    /// Drops `key`'s entry (the caller keeps `order` in step).
    private mutating func forget(_ key: String) {
        if case .replied(let reply) = entries.removeValue(forKey: key) { keptBytes -= reply.body.count }
    }
}
