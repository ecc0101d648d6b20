public import Foundation

/// The outbox: messages produced by a handler are stored in the handler's transaction and published
/// after the commit; once the broker confirms, they are marked dispatched. After a crash, whatever is
/// still undispatched is published again (consumers deduplicate by message id via their inbox).
extension SagaStore {
    static let outboxColumns = """
        message_id, incoming_message_id, position, exchange, routing_key, mandatory, message_type,
        correlation_id, reply_to, headers, body, created_at, dispatched_at
        """

    /// Stores the messages, all or none. A row already present for the same incoming message and
    /// position throws `SagaStoreError.duplicateMessage` (that message's outgoing messages were stored).
    public func appendOutbox(_ records: [OutboxRecord]) throws {
        guard !records.isEmpty else { return }
        func insertAll() throws {
            for record in records {
                try mapUniqueness(.duplicateMessage(messageId: record.messageId)) {
                    try connection.run(
                        "INSERT INTO outbox (\(Self.outboxColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            .text(record.messageId), .text(record.incomingMessageId), SQLiteValue(record.position),
                            .text(record.exchange), .text(record.routingKey), .integer(record.mandatory ? 1 : 0),
                            .text(record.messageType), SQLiteValue(record.correlationId),
                            SQLiteValue(record.replyTo), headerCoding.encode(record.headers), .blob(record.body),
                            SQLiteValue(record.createdAt), SQLiteValue(record.dispatchedAt),
                        ]
                    )
                }
            }
        }
        // One INSERT is atomic by itself; only several need a savepoint around them (a savepoint per
        // message is what a group commit already pays).
        if records.count == 1 { try insertAll() } else { try atomically(insertAll) }
    }

    /// The messages produced by one incoming message, in the order they were sent.
    public func outbox(forIncoming incomingMessageId: String) throws -> [OutboxRecord] {
        let rows = try connection.query(
            "SELECT \(Self.outboxColumns) FROM outbox WHERE incoming_message_id = ? ORDER BY position",
            [.text(incomingMessageId)]
        )
        return try rows.map(outboxRecord)
    }

    /// Messages not yet confirmed by the broker, oldest first (and in send order within one incoming
    /// message), for the dispatcher that republishes after a crash.
    public func undispatchedOutbox(limit: Int = 100) throws -> [OutboxRecord] {
        let rows = try connection.query(
            """
            SELECT \(Self.outboxColumns) FROM outbox WHERE dispatched_at IS NULL
            ORDER BY created_at, incoming_message_id, position LIMIT ?
            """,
            [SQLiteValue(max(0, limit))]
        )
        return try rows.map(outboxRecord)
    }

    /// Marks messages as confirmed by the broker. Already-dispatched messages keep their first time.
    /// Returns how many rows changed.
    @discardableResult
    public func markDispatched(_ keys: [OutboxKey], at date: Date) throws -> Int {
        guard !keys.isEmpty else { return 0 }
        // One statement for the whole batch of confirms (the keys travel as a JSON array of
        // [incoming message id, position] pairs), instead of an UPDATE per message; each pair is found
        // through the (incoming_message_id, position) index.
        var list = "["
        for (index, key) in keys.enumerated() {
            if index > 0 { list += "," }
            list += "["
            HeaderCoding.appendQuoted(key.incomingMessageId, to: &list)
            list += ",\(key.position)]"
        }
        list += "]"
        return try connection.run(
            """
            UPDATE outbox SET dispatched_at = ?
            WHERE rowid IN (
                SELECT outbox.rowid FROM json_each(?) AS pair JOIN outbox
                ON outbox.incoming_message_id = json_extract(pair.value, '$[0]')
                AND outbox.position = json_extract(pair.value, '$[1]')
            ) AND dispatched_at IS NULL
            """,
            [SQLiteValue(date), .text(list)]
        )
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
            dispatchedAt: try reader.optionalDate(12)
        )
    }
}
