import Synchronization

/// Ids handed on and not finished yet: due rows handed to the pipeline (so the poller does not hand them
/// out twice), outbox rows being published (so a duplicate does not publish them a second time).
/// A done id can be kept a while longer (`remove(_:keeping:)`): a due row whose error-queue copy was not
/// confirmed stays due, and is not handed on again before its hold ends (`UnconfirmedDueRows`).
final class InFlightSet: Sendable {
    private struct State {
        var ids: Set<String> = []
        /// Ids done but kept until then.
        var keptUntil: [String: ContinuousClock.Instant] = [:]
        /// The earliest of `keptUntil`: every call looks for expired holds, and the poller asks about each
        /// due id it reads, so a scan of thousands of holds per call would cost more than the rows do.
        var nextExpiry: ContinuousClock.Instant?

        mutating func releaseExpired() {
            guard let next = nextExpiry else { return }
            let now = ContinuousClock.now
            guard next <= now else { return }
            nextExpiry = nil
            for (id, until) in keptUntil {
                if until <= now {
                    keptUntil.removeValue(forKey: id)
                    ids.remove(id)
                } else if nextExpiry.map({ until < $0 }) ?? true {
                    nextExpiry = until
                }
            }
        }
    }

    private let state = Mutex(State())
    func insert(_ id: String) -> Bool { state.withLock { $0.releaseExpired(); return $0.ids.insert(id).inserted } }
    func insert(_ batch: [String]) { state.withLock { $0.ids.formUnion(batch) } }
    func contains(_ id: String) -> Bool { state.withLock { $0.releaseExpired(); return $0.ids.contains(id) } }
    var count: Int { state.withLock { $0.releaseExpired(); return $0.ids.count } }
    /// The ids handed on and not done yet, and those done but kept (`count` is both).
    var counts: (handedOn: Int, kept: Int) {
        state.withLock { state in
            state.releaseExpired()
            return (state.ids.count - state.keptUntil.count, state.keptUntil.count)
        }
    }
    func remove(_ done: [String]) { remove(done, keeping: [:]) }

    /// Removes `done`, except the ids in `kept`: each of those stays for its duration.
    func remove(_ done: [String], keeping kept: [String: Duration]) {
        state.withLock { state in
            let now = ContinuousClock.now
            for id in done {
                if let duration = kept[id] {
                    let until = now + duration
                    state.keptUntil[id] = until
                    if state.nextExpiry.map({ until < $0 }) ?? true { state.nextExpiry = until }
                } else {
                    state.ids.remove(id)
                    // A kept id done again is no longer kept (`counts` subtracts the kept from the ids).
                    if !state.keptUntil.isEmpty { state.keptUntil.removeValue(forKey: id) }
                }
            }
        }
    }
}
