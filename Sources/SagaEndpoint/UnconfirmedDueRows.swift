import AMQPTransport
import Synchronization

/// Due rows (saga timeouts, parked retries) whose error-queue copy the broker did not take (the error queue
/// deleted, or full with reject-publish). Such a row stays due and keeps its failure count, so handed out
/// again at the next poll its handler ran once more and another copy went out, at every poll (5 a second,
/// each with a transaction and a publish) for as long as the error queue was missing. So the row is kept
/// in flight for a delay that doubles per row while its copies keep failing (100 ms up to 5 s), as a
/// delivery in the same state is held by `HeldDeliveries`; the other rows go on meanwhile.
final class UnconfirmedDueRows: Sendable {
    private struct State {
        /// The hold of each row whose copy just failed, until its batch's end hands it to `InFlightSet`.
        var pending: [String: Duration] = [:]
        /// Consecutive failed rounds per timeout id.
        var failures: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let policy: RecoveryPolicy

    init(initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(5)) {
        policy = RecoveryPolicy(initialDelay: initialDelay, maximumDelay: maximumDelay, jitter: 0)
    }

    /// The copies of these rows were not confirmed: each is held, for longer than the last time.
    func failed(_ timeoutIds: [String]) {
        guard !timeoutIds.isEmpty else { return }
        state.withLock { state in
            // Bounded as `HeldDeliveries`'s counts: rows that never get through start again from
            // the shortest delay.
            if state.failures.count >= 10_000 { state.failures.removeAll() }
            for id in timeoutIds {
                let failures = state.failures[id, default: 0]
                state.failures[id] = failures + 1
                state.pending[id] = policy.delay(attempt: failures)
            }
        }
    }

    /// These rows were settled (their copy, or their processing, went through): the next failure starts
    /// from the shortest delay.
    func succeeded(_ timeoutIds: [String]) {
        guard !timeoutIds.isEmpty else { return }
        state.withLock { state in
            guard !state.failures.isEmpty else { return }
            for id in timeoutIds {
                state.failures.removeValue(forKey: id)
                state.pending.removeValue(forKey: id)
            }
        }
    }

    /// The holds of `timeoutIds` (those whose copy failed in the batch that just ended), taken.
    func takeHolds(_ timeoutIds: [String]) -> [String: Duration] {
        state.withLock { state in
            guard !state.pending.isEmpty else { return [:] }
            var holds: [String: Duration] = [:]
            for id in timeoutIds { holds[id] = state.pending.removeValue(forKey: id) }
            return holds
        }
    }
}
