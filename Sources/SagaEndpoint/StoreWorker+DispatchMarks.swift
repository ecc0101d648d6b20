import Foundation
import SagaStore

// Marking confirmed outbox rows dispatched without a write of their own per batch (`DispatchMarks`).
extension StoreWorker {
    /// Marks `rows` dispatched with the next batch's transaction, or by themselves after `markFlushDelay`
    /// if none comes, and then releases `messageIds` (the rows' ids) from `publishing`. Returns at once:
    /// the batch that confirmed them acks without waiting for this thread.
    nonisolated func markDispatchedWithNextCommit(_ rows: [OutboxKey], releasing messageIds: [String]) {
        guard !rows.isEmpty else {
            publishing.remove(messageIds)
            return
        }
        if dispatchMarks.add(rows, releasing: messageIds) { scheduleMarkFlush() }
    }

    /// Flushes the marks after `delay` (`markFlushDelay` by default).
    nonisolated func scheduleMarkFlush(after delay: Duration? = nil) {
        Task { [markFlushDelay] in
            try? await Task.sleep(for: delay ?? markFlushDelay)
            await self.flushDispatchMarks()
        }
    }

    /// A scheduled flush: writes the pending marks by themselves once they have waited `markFlushDelay`
    /// (no batch came to take them); younger ones wait for the next batch a little longer.
    func flushDispatchMarks() {
        // Closed: the marks were written then; any added since are lost with the connection.
        guard !closed else { return }
        switch dispatchMarks.flushStarts(after: markFlushDelay) {
        case .wait(let remaining): scheduleMarkFlush(after: remaining)
        case .write(let marks): writeAlone(marks)
        }
    }

    /// Writes `marks` in a write of their own (no batch came to take them, or the endpoint closes; a flush
    /// after `close()` does not get here).
    func writeAlone(_ marks: DispatchMarks.Pending) {
        guard !marks.isEmpty else { return }
        do {
            // A mark lost on a power cut only means a re-send under the same id, which downstream
            // inboxes drop; so this commit does not wait for an fsync.
            _ = try store.connection.withSynchronous(.normal) {
                try store.markDispatched(marks.rows, at: Date())
            }
        } catch {
            // Harmless: released unmarked, the rows are sent again by housekeeping and deduplicated
            // downstream (as they were when a batch's own mark failed).
            logger.warning("could not mark outbox rows dispatched", metadata: [
                "rows": "\(marks.rows.count)", "error": "\(error)"])
        }
        publishing.remove(marks.messageIds)
    }

    /// Inside a batch's transaction: marks the rows earlier batches confirmed. Throws only a storage error,
    /// which fails the transaction (the marks then wait for the next one).
    func mark(_ marks: DispatchMarks.Pending, in store: SagaStore, now: Date) throws {
        guard !marks.rows.isEmpty else { return }
        _ = try store.markDispatched(marks.rows, at: now)
    }
}
