import Synchronization

/// At most one warning per interval for each key (an unconfirmed publish's destination and outcome),
/// saying how many messages the skipped ones were about. One warning per batch still made 1,391 lines in
/// 25 s while a queue's length limit nacked every publish (an operator's review).
///
/// Keys come from outside: a reply's routing key is its requester's reply queue, so thousands of requesters
/// gone with their queues make thousands of keys. The keys are bounded (`capacity`), and quiet ones are
/// looked for at most once per interval: pruned at every new key once 1,000 were kept, a flood of distinct
/// keys rebuilt the whole dictionary per key, on the batches' settle stage (20,000 keys a thousand a
/// second cost 108 s of CPU in a debug build), and every key of the last minute was kept, however many.
final class WarningThrottle: Sendable {
    private struct Entry {
        var lastLogged: ContinuousClock.Instant
        var skippedMessages: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// When quiet keys were last looked for.
        var lastPrune: ContinuousClock.Instant?
        /// Entries looked at by pruning, in all (tests check it grows with the keys, not with their square).
        var examined = 0
    }

    /// Below this many keys nothing is pruned: a few hundred destinations cost nothing to keep.
    private static let pruneFrom = 1000

    private let interval: Duration
    /// The most keys kept. Reached, every key is forgotten: each logs its next warning at once, as a new
    /// key does (only a flood of distinct keys gets there, and each of those logs once anyway).
    private let capacity: Int
    private let state = Mutex(State())

    init(interval: Duration = .seconds(1), capacity: Int = 10_000) {
        self.interval = interval
        self.capacity = max(Self.pruneFrom, capacity)
    }

    /// Whether to log now a warning about `messages` messages under `key`: nil to stay quiet (they are
    /// added to the next warning's count); otherwise the messages to report, the skipped ones included.
    func admit(_ key: String, messages: Int, now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            if var entry = state.entries[key], now - entry.lastLogged < interval {
                entry.skippedMessages += messages
                state.entries[key] = entry
                return nil
            }
            let skipped = state.entries[key]?.skippedMessages ?? 0
            if state.entries[key] == nil { makeRoom(&state, now: now) }
            state.entries[key] = Entry(lastLogged: now, skippedMessages: 0)
            return messages + skipped
        }
    }

    /// Before a new key is added: destinations come and go, so those quiet for a while are forgotten (at
    /// most once per interval); past `capacity`, all of them.
    private func makeRoom(_ state: inout State, now: ContinuousClock.Instant) {
        guard state.entries.count >= Self.pruneFrom else { return }
        if state.lastPrune.map({ now - $0 >= interval }) ?? true {
            state.lastPrune = now
            state.examined += state.entries.count
            state.entries = state.entries.filter { now - $0.value.lastLogged < interval * 60 }
        }
        if state.entries.count >= capacity { state.entries.removeAll() }
    }

    /// The keys kept now.
    var count: Int { state.withLock { $0.entries.count } }

    /// Entries looked at by pruning so far.
    var examinedByPruning: Int { state.withLock { $0.examined } }
}
