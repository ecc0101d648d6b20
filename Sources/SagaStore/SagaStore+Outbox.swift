public import Foundation

/// The outbox: messages produced by a handler are stored in the handler's transaction and published
/// after the commit; once the broker confirms, they are marked dispatched. After a crash, whatever is
/// still undispatched is published again (consumers deduplicate by message id via their inbox).
extension SagaStore {
    static let outboxColumns = """
        message_id, incoming_message_id, position, exchange, routing_key, mandatory, message_type,
        correlation_id, reply_to, headers, body, created_at, dispatched_at
        """

    /// Stores the messages, all or none, and returns them with their row numbers (`seq`). A row already
    /// present for the same incoming message and position throws `SagaStoreError.duplicateMessage` (that
    /// message's outgoing messages were stored).
    ///
    /// A row points at its incoming message's inbox row (`inbox_seq`) when there is one: the inbox rows
    /// are numbered in the order messages arrive, so a new message's outgoing rows are appended to the
    /// end of that index instead of landing on a random page of an index on the random message id.
    @discardableResult
    public func appendOutbox(_ records: [OutboxRecord]) throws -> [OutboxRecord] {
        guard !records.isEmpty else { return [] }
        func insertAll() throws -> [OutboxRecord] {
            var stored = records
            // In send order, so that the row numbers are too (the re-send after a crash goes by them).
            for index in records.indices.sorted(by: { records[$0].position < records[$1].position }) {
                let record = stored[index]
                try mapUniqueness(.duplicateMessage(messageId: record.messageId)) {
                    try connection.run(
                        """
                        INSERT INTO outbox (inbox_seq, \(Self.outboxColumns))
                        VALUES ((SELECT seq FROM inbox WHERE message_id = ?2),
                                ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                        """,
                        [
                            .text(record.messageId), .text(record.incomingMessageId), SQLiteValue(record.position),
                            .text(record.exchange), .text(record.routingKey), .integer(record.mandatory ? 1 : 0),
                            .text(record.messageType), SQLiteValue(record.correlationId),
                            SQLiteValue(record.replyTo), headerCoding.encode(record.headers), .blob(record.body),
                            SQLiteValue(record.createdAt), SQLiteValue(record.dispatchedAt),
                        ]
                    )
                }
                stored[index].seq = connection.lastInsertRowID
            }
            return stored
        }
        // One INSERT is atomic by itself; only several need a savepoint around them (a savepoint per
        // message is what a group commit already pays).
        if records.count == 1 { return try insertAll() }
        return try atomically(insertAll)
    }

    /// The messages produced by one incoming message, in the order they were sent: those stored with
    /// its inbox row (checked against the id too), and those stored without one.
    public func outbox(forIncoming incomingMessageId: String) throws -> [OutboxRecord] {
        let rows = try connection.query(
            """
            SELECT \(Self.outboxColumns), seq FROM outbox
            WHERE seq IN (
                SELECT seq FROM outbox WHERE inbox_seq = (SELECT seq FROM inbox WHERE message_id = ?1)
                UNION ALL
                SELECT seq FROM outbox WHERE inbox_seq IS NULL AND incoming_message_id = ?1
            ) AND incoming_message_id = ?1
            ORDER BY position
            """,
            [.text(incomingMessageId)]
        )
        return try rows.map(outboxRecord)
    }

    /// Messages not yet confirmed by the broker, oldest first (and in send order within one incoming
    /// message), for the dispatcher that republishes after a crash. Row numbers follow that order, and
    /// the `dispatched_at` index lists the undispatched rows by row number: no sort, however large the
    /// backlog after a long broker outage.
    ///
    /// `after`: only rows numbered above it, so that a reader can go round the backlog in passes (rows
    /// that keep failing at its start then do not hide the rest); `through`: none numbered above it (the
    /// newest row when the reader's round started, see `lastOutboxSeq`).
    public func undispatchedOutbox(after seq: Int64 = 0, through last: Int64 = .max,
                                   limit: Int = 100) throws -> [OutboxRecord] {
        let rows = try connection.query(
            """
            SELECT \(Self.outboxColumns), seq FROM outbox WHERE dispatched_at IS NULL AND seq > ? AND seq <= ?
            ORDER BY seq LIMIT ?
            """,
            [.integer(seq), .integer(last), SQLiteValue(max(0, limit))]
        )
        return try rows.map(outboxRecord)
    }

    /// The number of the newest outbox row (0 for none): rows written later are numbered above it.
    public func lastOutboxSeq() throws -> Int64 {
        try connection.query("SELECT COALESCE(MAX(seq), 0) FROM outbox").first?[0].integerValue ?? 0
    }

    /// Marks messages as confirmed by the broker. Already-dispatched messages keep their first time.
    /// Returns how many rows changed.
    @discardableResult
    public func markDispatched(_ keys: [OutboxKey], at date: Date) throws -> Int {
        guard !keys.isEmpty else { return 0 }
        // One statement for the whole batch of confirms (the row numbers travel as a JSON array),
        // instead of an UPDATE per message.
        let list = "[" + keys.map { String($0.seq) }.joined(separator: ",") + "]"
        return try connection.run(
            """
            UPDATE outbox SET dispatched_at = ?
            WHERE seq IN (SELECT value FROM json_each(?)) AND dispatched_at IS NULL
            """,
            [SQLiteValue(date), .text(list)]
        )
    }

    /// Takes an undispatched row for the caller: its `created_at` moves to `now` if it is still `createdAt`,
    /// so that housekeeping (this process's and any other's on the same file) leaves it alone for a while.
    /// True when this call took it; false when another took it first or it was dispatched meanwhile.
    public func leaseUndispatchedOutbox(_ key: OutboxKey, createdAt: Date, now: Date) throws -> Bool {
        try connection.run(
            "UPDATE outbox SET created_at = ? WHERE seq = ? AND created_at = ? AND dispatched_at IS NULL",
            [SQLiteValue(now), .integer(key.seq), SQLiteValue(createdAt)]
        ) == 1
    }

    /// Deletes dispatched messages confirmed before `date`; returns how many. Undispatched ones are
    /// never purged, however old.
    @discardableResult
    public func purgeDispatchedOutbox(olderThan date: Date) throws -> Int {
        try connection.run(
            "DELETE FROM outbox WHERE dispatched_at IS NOT NULL AND dispatched_at < ?",
            [SQLiteValue(date)]
        )
    }

    /// Number of messages waiting to be dispatched (a health metric: it should hover near zero).
    public func outboxBacklog() throws -> Int {
        try count("SELECT COUNT(*) FROM outbox WHERE dispatched_at IS NULL")
    }

    private func outboxRecord(_ row: SQLiteRow) throws -> OutboxRecord {
        let reader = RowReader(row: row, table: "outbox")
        return OutboxRecord(
            messageId: try reader.text(0),
            incomingMessageId: try reader.text(1),
            position: try reader.int(2),
            exchange: try reader.text(3),
            routingKey: try reader.text(4),
            mandatory: try reader.bool(5),
            messageType: try reader.text(6),
            correlationId: try reader.optionalText(7),
            replyTo: try reader.optionalText(8),
            headers: try reader.headers(9, headerCoding),
            body: try reader.data(10),
            createdAt: try reader.date(11),
            dispatchedAt: try reader.optionalDate(12),
            seq: try reader.int64(13)
        )
    }
}
