import Foundation
import Logging
import SagaStore
import Sagas

// The store work of the pipeline outside a batch's transaction: redelivery counts, dispatch marks, due
// rows, failure counts, housekeeping. Each call is one short statement or transaction on the worker's
// thread.
extension StoreWorker {
    /// The id of the live instance of `key`, for the error-queue copy of its timeout; nil when it is gone.
    func sagaId(of key: SagaInstanceKey) -> String? {
        try? store.loadSaga(type: key.sagaType, correlationId: key.correlationId)?.sagaId
    }

    /// Which of `messageIds` the inbox holds. Throws when the inbox cannot be read: "not found" would run
    /// a duplicate's stateless handlers (an integration called twice).
    func inboxContains(_ messageIds: [String]) throws -> Set<String> {
        Set(try messageIds.filter { try store.inboxContains(messageId: $0) })
    }

    /// Counts one more delivery of redelivered messages, committed before they are processed.
    func countDeliveries(_ messageIds: [String], now: Date, first: Int = 2) -> [String: Int] {
        do {
            return try store.countDeliveries(messageIds: messageIds, at: now, first: first)
        } catch {
            logger.warning("could not count redeliveries", metadata: ["error": "\(error)"])
            return [:]
        }
    }

    /// Forgets the delivery counts and failure counts of `messageIds` (messages replayed from an error
    /// queue: an operator's "try again" starts afresh), in one transaction: a statement committed by itself
    /// per message was one more WAL sync per message on this, the only writer. A failure count can outlive
    /// its copy: when the copy's confirm was lost with the connection, the count stays until the original
    /// comes back, and a replay that came first went straight back to the error queue, without its retries.
    func startAfresh(_ messageIds: [String]) {
        guard !messageIds.isEmpty else { return }
        _ = try? store.transaction { store in
            for messageId in messageIds {
                try store.clearDeliveries(messageId: messageId)
                _ = try store.clearFailure(messageId: messageId)
            }
        }
    }

    func markDispatched(_ rows: [OutboxKey], now: Date) {
        guard !rows.isEmpty else { return }
        do {
            // A mark lost on a power cut only means a re-send under the same id, which downstream
            // inboxes drop; so this commit does not wait for an fsync (a process crash cannot lose it).
            _ = try store.connection.withSynchronous(.normal) {
                try store.markDispatched(rows, at: now)
            }
        } catch {
            // Harmless: the rows are published again after a restart and deduplicated downstream.
            logger.warning("could not mark outbox rows dispatched", metadata: ["error": "\(error)"])
        }
    }

    /// The rows this process may move to the error queue: those it leased (`leaseUndispatchedOutbox`). With
    /// two processes on one file both read the same rows, and both moved them: two copies of each.
    func lease(_ rows: [OutboxRecord], now: Date) -> [OutboxRecord] {
        rows.filter { row in
            guard let key = row.key else { return false }
            do {
                // Lost on a power cut, a lease only lets the row be moved twice (one id): no fsync for it.
                return try store.connection.withSynchronous(.normal) {
                    try store.leaseUndispatchedOutbox(key, createdAt: row.createdAt, now: now)
                }
            } catch {
                logger.warning("could not lease an outbox row; trying again later", metadata: [
                    "message_id": "\(row.messageId)", "message_type": "\(row.messageType)", "error": "\(error)"])
                return false
            }
        }
    }

    /// Up to `limit` due rows that are not in `inFlight` (handed on and not finished), earliest first. Their
    /// ids are read first and only the rows wanted are read in full, by row number, after the check: a row
    /// whose batch ended meanwhile (deleted, or parked again under its id, not due yet) is then not found,
    /// where a row read in full before the check could be handed on a second time with its old contents.
    func dueTimeouts(now: Date, limit: Int, skipping inFlight: InFlightSet) throws -> [TimeoutRecord] {
        guard limit > 0 else { return [] }
        let due = try store.dueTimeoutIds(at: now, limit: limit + inFlight.count)
        let wanted = due.lazy.filter { !inFlight.contains($0.timeoutId) }.prefix(limit)
        return try store.timeouts(Array(wanted), dueAt: now)
    }

    /// Outbox rows a crash left unconfirmed (created before `cutoff`), for housekeeping to send again,
    /// claimed in `publishing` right where they are read. A copy of their incoming message processed
    /// meanwhile then does not send them a second time, and rows a batch is publishing, or that a duplicate
    /// was handed, are left out: one copy goes out per attempt, not two. The caller releases the claim
    /// (`publishing.remove`) after marking the confirmed ones dispatched.
    ///
    /// Read from the row after `cursor.after` on; `next` is where the following pass starts: after the last
    /// row read, or from the start again once the end of the round was reached. Always from the start, 500
    /// rows that kept failing (returned, nacked) were all that was ever sent again. A round ends at the
    /// newest row there was when it started: ending only at a short page, it never ended while new
    /// unconfirmed rows (refused by a full queue) came at a page a pass, and the old rows at its start were
    /// not sent again, also once their queue had room.
    ///
    /// A row dated after `ahead` was written while the wall clock was ahead (stepped back since): it is
    /// claimed too. By its date alone it waited until the clock caught up (an hour for an hour's step),
    /// and a row of a timeout's step, or of an acked message, has no redelivery to send it meanwhile.
    func claimUnconfirmedOutbox(createdBefore cutoff: Date, orAfter ahead: Date = .distantFuture, cursor: OutboxCursor,
                                limit: Int) throws -> (rows: [OutboxRecord], next: OutboxCursor) {
        let through = cursor.after == 0 ? try store.lastOutboxSeq() : cursor.through
        let read = try store.undispatchedOutbox(after: cursor.after, through: through, limit: limit)
        let rows = read.filter { ($0.createdAt < cutoff || $0.createdAt > ahead) && !publishing.contains($0.messageId) }
        publishing.insert(rows.map(\.messageId))
        guard read.count == limit, let last = read.last?.seq, last < through else { return (rows, OutboxCursor()) }
        return (rows, OutboxCursor(after: last, through: through))
    }

    func recordFailure(messageId: String, error: String, now: Date) throws -> FailureRecord {
        try store.recordFailure(messageId: messageId, error: error, at: now)
    }

    /// The failed attempts counted so far for a message, nil for none (or when they cannot be read).
    func earlierFailure(messageId: String) -> FailureRecord? {
        try? store.failure(messageId: messageId)
    }

    /// Deletes due rows that were dealt with outside a transaction (moved to the error queue); each comes
    /// with the log metadata of the message it became (its id, type, and saga), for the warning below.
    func deleteTimeouts(_ rows: [(key: TimeoutKey, metadata: Logger.Metadata)]) {
        for row in rows {
            do {
                _ = try store.deleteTimeout(row.key)
            } catch {
                // It stays due and is handled (and error-queued) again: at least once.
                logger.warning("could not delete a due row", metadata: row.metadata.merging([
                    "timeout_id": "\(row.key.timeoutId)", "error": "\(error)"]) { $1 })
            }
        }
    }

    /// Forgets the failure counts of messages whose error-queue copies were confirmed. Best effort: a count
    /// left behind (the database cannot be written now) only sends a replay of the copy to the error queue
    /// at its first failure, and housekeeping removes it after the deduplication window.
    func clearFailures(_ messageIds: [String]) {
        guard !messageIds.isEmpty else { return }
        // One transaction, as `startAfresh`: a commit per message is one more WAL sync per message.
        _ = try? store.transaction { store in
            for messageId in messageIds { _ = try store.clearFailure(messageId: messageId) }
        }
    }

    /// Removes inbox rows older than the deduplication window and old dispatched outbox rows.
    func purge(inboxBefore: Date, outboxBefore: Date) throws -> (inbox: Int, outbox: Int) {
        _ = try store.purgeDeliveries(olderThan: inboxBefore)
        // A message that failed and never came back would otherwise keep its row for good.
        _ = try store.purgeFailures(olderThan: inboxBefore)
        return (try store.purgeInbox(olderThan: inboxBefore), try store.purgeDispatchedOutbox(olderThan: outboxBefore))
    }
}
