import Foundation
import Logging
import SagaStore

extension SagaEndpoint {
    /// Logs, once the database is open and before the broker is reached, what the store holds that the
    /// endpoint resumes: after a `kill -9` nothing said what it recovered (outbox rows re-sent after
    /// `outboxRedispatchDelay`, timeouts fired late, parked retries, live sagas).
    ///
    /// A notice, zeros included: a clean start is information too (the operator looking for this line after
    /// a crash finds it on every start, at the level README's example config logs), and it is one line.
    /// Read before the broker connection so that the figures are the crash's, not mixed with new traffic,
    /// and so that they are seen while the broker is unreachable. On the backlog reader's connection: a
    /// write lock held by another process does not hold it up. A failing read is a warning, not a failed
    /// start: the figures only inform.
    func logStoredWork(_ reader: BacklogReader, now: Date = Date()) async {
        let work: StoredWork
        do {
            work = try await reader.storedWork(now: now)
        } catch {
            logger.warning("could not read what the database holds to resume; starting anyway",
                           metadata: ["error": "\(error)"])
            return
        }
        func counted(_ value: Int) -> Logger.MetadataValue {
            value >= StoredWork.countLimit ? "\(StoredWork.countLimit)+" : "\(value)"
        }
        func seconds(since date: Date?) -> Logger.MetadataValue? {
            date.map { "\(max(0, Int(now.timeIntervalSince($0).rounded())))" }
        }
        var metadata: Logger.Metadata = [
            "sagas_live": "\(work.liveSagas)",
            "outbox_unconfirmed": counted(work.unconfirmedOutbox),
            "timeouts_pending": "\(work.pendingTimeouts)",
            "timeouts_overdue": counted(work.overdueTimeouts),
            "parked_messages": counted(work.parkedMessages),
            "failing_messages": counted(work.failingMessages),
            "unfinished_redeliveries": counted(work.unfinishedRedeliveries),
            "outbox_redispatch_delay": "\(configuration.outboxRedispatchDelay)",
        ]
        metadata["outbox_oldest_unconfirmed_age_s"] = seconds(since: work.oldestUnconfirmedOutboxAt)
        metadata["timeouts_overdue_by_s"] = seconds(since: work.earliestOverdueAt)
        logger.notice("resuming from the database", metadata: metadata)
    }
}
