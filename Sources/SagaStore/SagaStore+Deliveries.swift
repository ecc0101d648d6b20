public import Foundation

/// Delivery counts of messages that came back redelivered. Committed before the message is processed, so
/// the count survives a process that dies while processing it (a poison message that crashes rather than
/// throws); removed when the message is finally processed.
extension SagaStore {
    /// Counts one more delivery of each message and returns the counts. A message counted for the first
    /// time gets `first`: 2 for a redelivery (the original delivery counts as 1), 1 for a due timeout that
    /// may or may not have been taken before.
    public func countDeliveries(messageIds: [String], at date: Date, first: Int = 2) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        try atomicallyCounting {
            for id in messageIds {
                let rows = try connection.query(
                    """
                    INSERT INTO deliveries (message_id, count, last_delivered_at) VALUES (?1, ?3, ?2)
                    ON CONFLICT (message_id) DO UPDATE SET count = count + 1, last_delivered_at = excluded.last_delivered_at
                    RETURNING count
                    """,
                    [.text(id), SQLiteValue(date), .integer(Int64(first))])
                counts[id] = Int(rows.first?[0].integerValue ?? Int64(first))
            }
        }
        return counts
    }

    /// Forgets a message's delivery count (it was processed, or moved to the error queue).
    public func clearDeliveries(messageId: String) throws {
        try connection.run("DELETE FROM deliveries WHERE message_id = ?", [.text(messageId)])
    }

    /// Removes delivery counts not updated since `date` (as old as the inbox's deduplication window).
    @discardableResult
    public func purgeDeliveries(olderThan date: Date) throws -> Int {
        try connection.run("DELETE FROM deliveries WHERE last_delivered_at < ?", [SQLiteValue(date)])
    }

    private func atomicallyCounting(_ body: () throws -> Void) throws {
        if connection.isInTransaction {
            try savepoint(body)
        } else {
            try transaction { _ in try body() }
        }
    }
}
