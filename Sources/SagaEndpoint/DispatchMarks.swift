import SagaStore
import Synchronization

/// Outbox rows whose publishes were confirmed and that are not marked dispatched yet. A batch used to mark
/// its rows in a write of its own once its confirms came in, waiting for the SQLite thread, which was
/// committing the next batch (an fsync) just then: the wait held up the batch's acks and, through the
/// pipeline's bound on batches in flight, the batches behind it (about 2 ms of a 5 ms batch at half load).
/// The marks now ride with the next transaction on that thread (`StoreWorker.processBatch`), or are written
/// by themselves after `StoreWorker.markFlushDelay` when no batch comes.
///
/// Their message ids stay in `StoreWorker.publishing` until the marks are committed: a duplicate or
/// housekeeping that reads the rows as undispatched meanwhile leaves them out, as it did while they were
/// being published. Lost with the process (a crash before the next commit), marks only mean a re-send of
/// the rows under their ids, which downstream inboxes drop, as a mark lost on a power cut did before.
final class DispatchMarks: Sendable {
    struct Pending: Sendable {
        var rows: [OutboxKey] = []
        /// Released from `publishing` once the rows are marked.
        var messageIds: [String] = []
        /// When the oldest of them was added (kept when they are given back): they are written by themselves
        /// only once they have waited the delay, not when a flush scheduled for older marks comes due.
        var since: ContinuousClock.Instant?
        var isEmpty: Bool { rows.isEmpty && messageIds.isEmpty }
    }

    /// What a flush that comes due does.
    enum Flush: Sendable {
        /// Writes these marks (none: nothing is pending, and no flush is scheduled any more).
        case write(Pending)
        /// The pending marks are younger than the delay (a batch took the older ones): it waits this long.
        case wait(Duration)
    }

    private struct State {
        var pending = Pending()
        /// A write of the marks by themselves is scheduled (and has not started).
        var flushScheduled = false

        mutating func scheduleFlush() -> Bool {
            guard !flushScheduled, !pending.isEmpty else { return false }
            flushScheduled = true
            return true
        }
    }

    private let state = Mutex(State())

    /// Adds confirmed rows; true when the caller must schedule a flush (none is).
    func add(_ rows: [OutboxKey], releasing messageIds: [String], now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            if state.pending.isEmpty { state.pending.since = now }
            state.pending.rows += rows
            state.pending.messageIds += messageIds
            return state.scheduleFlush()
        }
    }

    /// Takes every pending mark, for a transaction on the store's thread.
    func take() -> Pending {
        state.withLock { state in
            defer { state.pending = Pending() }
            return state.pending
        }
    }

    /// Gives back marks whose transaction did not commit; true when the caller must schedule a flush.
    func putBack(_ marks: Pending) -> Bool {
        guard !marks.isEmpty else { return false }
        return state.withLock { state in
            state.pending.rows = marks.rows + state.pending.rows
            state.pending.messageIds = marks.messageIds + state.pending.messageIds
            state.pending.since = [marks.since, state.pending.since].compactMap { $0 }.min()
            return state.scheduleFlush()
        }
    }

    /// The scheduled flush comes due. It takes the pending marks if they have waited `delay` (marks added
    /// from then on schedule another flush); younger ones (added after a batch took those the flush was
    /// scheduled for) are left for the next batch, and the flush waits for them to come due. Taken every
    /// time, the marks were written by themselves every `delay` under a steady load, with the next batch's
    /// transaction only milliseconds away.
    func flushStarts(after delay: Duration, now: ContinuousClock.Instant = .now) -> Flush {
        state.withLock { state in
            if !state.pending.isEmpty, let since = state.pending.since, since + delay > now {
                return .wait(since + delay - now)
            }
            state.flushScheduled = false
            defer { state.pending = Pending() }
            return .write(state.pending)
        }
    }

    var count: Int { state.withLock { $0.pending.rows.count } }
}
