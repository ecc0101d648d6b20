public import Foundation

/// Saga timeouts: messages to deliver back to a saga at a given time. A poller asks for the due ones,
/// delivers each and deletes it in the same transaction as the saga's handling of it.
extension SagaStore {
    static let timeoutColumns = """
        timeout_id, saga_type, correlation_id, due_at, message_type, body, headers, created_at
        """

    /// Stores a timeout. An id the saga already has throws `SagaStoreError.duplicateMessage`.
    ///
    /// A timeout of a stored saga points at the saga's row number (`saga_seq`), so the timeouts of new
    /// sagas are appended to the end of their index; any other (a delayed retry's) is keyed by its ids.
    public func scheduleTimeout(_ record: TimeoutRecord) throws {
        try mapUniqueness(.duplicateMessage(messageId: record.timeoutId)) {
            try connection.run(
                """
                INSERT INTO timeouts (saga_seq, \(Self.timeoutColumns))
                VALUES ((SELECT seq FROM sagas WHERE saga_type = ?2 AND correlation_id = ?3),
                        ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                """,
                [
                    .text(record.timeoutId), .text(record.sagaType), .text(record.correlationId),
                    SQLiteValue(record.dueAt), .text(record.messageType), .blob(record.body),
                    headerCoding.encode(record.headers), SQLiteValue(record.createdAt),
                ]
            )
        }
    }

    /// The timeouts of one saga, as the row numbers of both kinds: pointing at the stored saga, or
    /// (scheduled while no such saga was stored) keyed by its ids. `?1` and `?2` are the saga's type
    /// and correlation id.
    static let timeoutsOfSaga = """
        SELECT seq FROM timeouts WHERE saga_seq = (SELECT seq FROM sagas WHERE saga_type = ?1 AND correlation_id = ?2)
        UNION ALL
        SELECT seq FROM timeouts WHERE saga_seq IS NULL AND saga_type = ?1 AND correlation_id = ?2
        """

    /// Removes all pending timeouts of one saga; returns how many.
    @discardableResult
    public func cancelTimeouts(sagaType: String, correlationId: String) throws -> Int {
        try connection.run(
            "DELETE FROM timeouts WHERE seq IN (\(Self.timeoutsOfSaga))",
            [.text(sagaType), .text(correlationId)]
        )
    }

    /// Timeouts with `dueAt <= date`, earliest first; those due at the same moment in the order they were
    /// requested (as `SagaTesting` delivers them; the row number, which the due-time index ends with).
    public func dueTimeouts(at date: Date, limit: Int = 100) throws -> [TimeoutRecord] {
        let rows = try connection.query(
            "SELECT \(Self.timeoutColumns) FROM timeouts WHERE due_at <= ? ORDER BY due_at, seq LIMIT ?",
            [SQLiteValue(date), SQLiteValue(max(0, limit))]
        )
        return try rows.map(timeoutRecord)
    }

    /// The row numbers and ids of the timeouts due at `date`, earliest first, without their messages: the
    /// due-timeout poller reads these, leaves out the rows it has handed on already, and reads only the
    /// others in full (`timeouts(_:dueAt:)`). Reading the whole rows at every poll read the bodies of every row
    /// still in flight again, five times a second (up to 500 rows of up to 1 MiB each, on the writer's thread).
    public func dueTimeoutIds(at date: Date, limit: Int) throws -> [(seq: Int64, timeoutId: String)] {
        try connection.query(
            "SELECT seq, timeout_id FROM timeouts WHERE due_at <= ? ORDER BY due_at, seq LIMIT ?",
            [SQLiteValue(date), SQLiteValue(max(0, limit))]
        ).map { row in
            let reader = RowReader(row: row, table: "timeouts")
            return (try reader.int64(0), try reader.text(1))
        }
    }

    /// The due timeouts (`dueTimeoutIds`) with these row numbers and ids, in that order; a row that is gone
    /// meanwhile (handled, cancelled) is left out, and so is one parked again since (SQLite may give the new
    /// row the old one's number: it is then not due yet).
    public func timeouts(_ ids: [(seq: Int64, timeoutId: String)], dueAt date: Date) throws -> [TimeoutRecord] {
        try ids.compactMap { id in
            try connection.query(
                "SELECT \(Self.timeoutColumns) FROM timeouts WHERE seq = ? AND timeout_id = ? AND due_at <= ?",
                [.integer(id.seq), .text(id.timeoutId), SQLiteValue(date)]
            ).first.map(timeoutRecord)
        }
    }

    /// Deletes one timeout; false if it was already gone (delivered or cancelled by someone else).
    @discardableResult
    public func deleteTimeout(_ key: TimeoutKey) throws -> Bool {
        try connection.run(
            "DELETE FROM timeouts WHERE seq IN (\(Self.timeoutsOfSaga)) AND timeout_id = ?3",
            [.text(key.sagaType), .text(key.correlationId), .text(key.timeoutId)]
        ) > 0
    }

    /// When the earliest pending timeout is due, so the poller can sleep until then; nil if none.
    public func nextTimeoutDue() throws -> Date? {
        let value = try connection.query("SELECT MIN(due_at) FROM timeouts").first?[0]
        return value?.realValue.map { Date(timeIntervalSince1970: $0) }
    }

    /// The pending timeouts of one saga, earliest first.
    public func pendingTimeouts(sagaType: String, correlationId: String) throws -> [TimeoutRecord] {
        let rows = try connection.query(
            """
            SELECT \(Self.timeoutColumns) FROM timeouts WHERE seq IN (\(Self.timeoutsOfSaga))
            ORDER BY due_at, seq
            """,
            [.text(sagaType), .text(correlationId)]
        )
        return try rows.map(timeoutRecord)
    }

    public func timeoutCount() throws -> Int {
        try count("SELECT COUNT(*) FROM timeouts")
    }

    private func timeoutRecord(_ row: SQLiteRow) throws -> TimeoutRecord {
        let reader = RowReader(row: row, table: "timeouts")
        return TimeoutRecord(
            timeoutId: try reader.text(0),
            sagaType: try reader.text(1),
            correlationId: try reader.text(2),
            dueAt: try reader.date(3),
            messageType: try reader.text(4),
            body: try reader.data(5),
            headers: try reader.headers(6, headerCoding),
            createdAt: try reader.date(7)
        )
    }
}
