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
        var isEmpty: Bool { rows.isEmpty && messageIds.isEmpty }
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
    func add(_ rows: [OutboxKey], releasing messageIds: [String]) -> Bool {
        state.withLock { state in
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
            return state.scheduleFlush()
        }
    }

    /// The scheduled flush starts: marks added from now on schedule another.
    func flushStarts() -> Pending {
        state.withLock { state in
            state.flushScheduled = false
            defer { state.pending = Pending() }
            return state.pending
        }
    }

    var count: Int { state.withLock { $0.pending.rows.count } }
}
