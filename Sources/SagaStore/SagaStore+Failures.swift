public import Foundation

/// Failure counts per message. Written outside (after) the failed handling transaction, which rolled
/// back, so the count survives redeliveries and the endpoint can decide between retry and dead-letter.
extension SagaStore {
    static let failureColumns = "message_id, attempts, first_failure_at, last_failure_at, last_error, retry_after"

    /// Records one more failed attempt (the first creates the row) and returns the updated record.
    @discardableResult
    public func recordFailure(
        messageId: String,
        error: String,
        at date: Date,
        retryAfter: Date? = nil
    ) throws -> FailureRecord {
        // One upsert statement: no read-then-write window in which two consumers could both see
        // "no row" and lose an attempt.
        let rows = try connection.query(
            """
            INSERT INTO failures (\(Self.failureColumns)) VALUES (?1, 1, ?2, ?2, ?3, ?4)
            ON CONFLICT (message_id) DO UPDATE SET
                attempts = attempts + 1,
                last_failure_at = excluded.last_failure_at,
                last_error = excluded.last_error,
                retry_after = excluded.retry_after
            RETURNING \(Self.failureColumns)
            """,
            [.text(messageId), SQLiteValue(date), .text(error), SQLiteValue(retryAfter)]
        )
        guard let row = rows.first else {
            throw SagaStoreError.corruptRow(table: "failures", detail: "upsert of \(messageId) returned no row")
        }
        return try failureRecord(row)
    }

    public func failure(messageId: String) throws -> FailureRecord? {
        let rows = try connection.query(
            "SELECT \(Self.failureColumns) FROM failures WHERE message_id = ?",
            [.text(messageId)]
        )
        return try rows.first.map(failureRecord)
    }

    /// Forgets the failures of a message (after it finally succeeded or was dead-lettered).
    @discardableResult
    public func clearFailure(messageId: String) throws -> Bool {
        try connection.run("DELETE FROM failures WHERE message_id = ?", [.text(messageId)]) > 0
    }

    /// Notes that the message, failed, is parked for a delayed retry due at `dueAt`: its count is kept
    /// until then (`purgeFailures`). Nothing to note when it has no failure row (a not-found wait).
    public func markRetry(messageId: String, dueAt: Date) throws {
        try connection.run("UPDATE failures SET retry_after = ?2 WHERE message_id = ?1",
                           [.text(messageId), SQLiteValue(dueAt)])
    }

    /// Forgets failures last recorded before `date`: those of messages that failed and then never came
    /// back (expired, purged from their queue, handled by a process on another database). Returns how
    /// many were removed.
    ///
    /// A message parked for a delayed retry (`markRetry`) keeps its count until its retry was due before
    /// `date` too: it is not seen while it waits, but it comes back. Purged during a wait longer than the
    /// window (a delayed retry longer than the deduplication window), its retry counted from 1 again, was
    /// parked again, and the message went round for ever instead of to the error queue. Read from the
    /// failure row alone: a look-up in the timeouts table by the parked row's id has no index to use.
    ///
    /// A retry due before `date` that no one has taken yet (the endpoint was down longer than the window, or
    /// its poller is that far behind) is still parked: its count stays while any timeout due no later than
    /// it is pending. By its due time alone, the first purge after such a restart removed the count before
    /// the poller handed the retry on, and the retry counted from 1 again. One probe of the due-time index
    /// per such row; once the poller has taken every row due by then, the retry has come back or was
    /// withdrawn (its saga completed), and the count goes with the others.
    @discardableResult
    public func purgeFailures(olderThan date: Date) throws -> Int {
        try connection.run(
            """
            DELETE FROM failures WHERE last_failure_at < ?1
              AND (retry_after IS NULL
                   OR (retry_after < ?1 AND NOT EXISTS (SELECT 1 FROM timeouts WHERE due_at <= failures.retry_after)))
            """,
            [SQLiteValue(date)])
    }

    private func failureRecord(_ row: SQLiteRow) throws -> FailureRecord {
        let reader = RowReader(row: row, table: "failures")
        return FailureRecord(
            messageId: try reader.text(0),
            attempts: try reader.int(1),
            firstFailureAt: try reader.date(2),
            lastFailureAt: try reader.date(3),
            lastError: try reader.text(4),
            retryAfter: try reader.optionalDate(5)
        )
    }
}
