public import Foundation

/// Saga instances with optimistic concurrency: every update names the version it was based on, and
/// loses (`SagaStoreError.conflict`) if another handler got there first.
extension SagaStore {
    static let sagaColumns = """
        saga_type, correlation_id, saga_id, state, version, originator_reply_to, originator_correlation_id,
        created_at, updated_at
        """

    public func loadSaga(type sagaType: String, correlationId: String) throws -> SagaRecord? {
        let rows = try connection.query(
            "SELECT \(Self.sagaColumns) FROM sagas WHERE saga_type = ? AND correlation_id = ?",
            [.text(sagaType), .text(correlationId)]
        )
        return try rows.first.map(sagaRecord)
    }

    /// Which instance is stored under the key, at which version and with which state: enough to tell
    /// whether a state seen earlier (read on another connection, or guessed ahead of the transaction) is
    /// the current one. Cheaper than `loadSaga`: no originator or timestamps.
    public func sagaIdentity(type sagaType: String, correlationId: String) throws -> (sagaId: String, version: Int, state: Data)? {
        let rows = try connection.query(
            "SELECT saga_id, version, state FROM sagas WHERE saga_type = ? AND correlation_id = ?",
            [.text(sagaType), .text(correlationId)]
        )
        guard let row = rows.first else { return nil }
        let reader = RowReader(row: row, table: "sagas")
        return (try reader.text(0), try reader.int(1), try reader.data(2))
    }

    /// Inserts a new saga. If one with the same (type, correlation id) or saga id exists — typically two
    /// starting messages racing — throws `SagaStoreError.conflict`; the loser retries and finds it.
    public func insertSaga(_ record: SagaRecord) throws {
        let state = try stateText(record.state)
        try mapUniqueness(.conflict(sagaType: record.sagaType, correlationId: record.correlationId)) {
            try connection.run(
                "INSERT INTO sagas (\(Self.sagaColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    .text(record.sagaType), .text(record.correlationId), .text(record.sagaId), state,
                    SQLiteValue(record.version), SQLiteValue(record.originatorReplyTo),
                    SQLiteValue(record.originatorCorrelationId), SQLiteValue(record.createdAt),
                    SQLiteValue(record.updatedAt),
                ]
            )
        }
    }

    /// Replaces the state if the stored version is still `expectedVersion`, and bumps the version.
    /// Returns the new version. Throws `.conflict` if the saga changed or no longer exists.
    @discardableResult
    public func updateSaga(
        type sagaType: String,
        correlationId: String,
        state: Data,
        expectedVersion: Int,
        at date: Date
    ) throws -> Int {
        let changed = try connection.run(
            """
            UPDATE sagas SET state = ?, version = version + 1, updated_at = ?
            WHERE saga_type = ? AND correlation_id = ? AND version = ?
            """,
            [try stateText(state), SQLiteValue(date), .text(sagaType), .text(correlationId), SQLiteValue(expectedVersion)]
        )
        guard changed == 1 else { throw SagaStoreError.conflict(sagaType: sagaType, correlationId: correlationId) }
        return expectedVersion + 1
    }

    /// Deletes a completed saga (if still at `expectedVersion`, else `.conflict`) together with its
    /// pending timeouts, atomically: a finished saga must not be woken up again.
    public func deleteSaga(type sagaType: String, correlationId: String, expectedVersion: Int) throws {
        try atomically {
            // Timeouts first: they are found through the saga's row (a failed version check below rolls
            // their deletion back).
            try cancelTimeouts(sagaType: sagaType, correlationId: correlationId)
            let deleted = try connection.run(
                "DELETE FROM sagas WHERE saga_type = ? AND correlation_id = ? AND version = ?",
                [.text(sagaType), .text(correlationId), SQLiteValue(expectedVersion)]
            )
            guard deleted == 1 else {
                throw SagaStoreError.conflict(sagaType: sagaType, correlationId: correlationId)
            }
        }
    }

    /// Sagas oldest first, optionally of one type and at most `limit` (for admin views and tests).
    public func listSagas(type sagaType: String? = nil, limit: Int? = nil) throws -> [SagaRecord] {
        // One statement text for all four combinations: NULL parameters switch the filters off, and a
        // negative LIMIT means "no limit" in SQLite.
        let rows = try connection.query(
            """
            SELECT \(Self.sagaColumns) FROM sagas
            WHERE ?1 IS NULL OR saga_type = ?1
            ORDER BY created_at, saga_type, correlation_id
            LIMIT ?2
            """,
            [SQLiteValue(sagaType), SQLiteValue(limit.map { max(0, $0) } ?? -1)]
        )
        return try rows.map(sagaRecord)
    }

    /// Number of live sagas per saga type.
    public func sagaCounts() throws -> [String: Int] {
        let rows = try connection.query("SELECT saga_type, COUNT(*) FROM sagas GROUP BY saga_type")
        var counts: [String: Int] = [:]
        for row in rows {
            let reader = RowReader(row: row, table: "sagas")
            counts[try reader.text(0)] = try reader.int(1)
        }
        return counts
    }

    // MARK: Mapping

    private func sagaRecord(_ row: SQLiteRow) throws -> SagaRecord {
        let reader = RowReader(row: row, table: "sagas")
        return SagaRecord(
            sagaType: try reader.text(0),
            correlationId: try reader.text(1),
            sagaId: try reader.text(2),
            state: try reader.data(3),
            version: try reader.int(4),
            originatorReplyTo: try reader.optionalText(5),
            originatorCorrelationId: try reader.optionalText(6),
            createdAt: try reader.date(7),
            updatedAt: try reader.date(8)
        )
    }

    /// The state column is TEXT (readable JSON in the sqlite3 shell); bytes that are not UTF-8 would be
    /// altered on the way in, so they are refused rather than silently repaired.
    private func stateText(_ state: Data) throws -> SQLiteValue {
        guard let text = String(data: state, encoding: .utf8) else {
            throw SagaStoreError.invalidText(table: "sagas", column: "state")
        }
        return .text(text)
    }
}
