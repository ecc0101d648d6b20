public import Foundation

/// The inbox: ids of messages already handled, so a redelivered message (the broker delivers at least
/// once) is recognized and its side effects are not applied twice. Recorded in the same transaction as
/// the handling itself.
extension SagaStore {
    public func inboxContains(messageId: String) throws -> Bool {
        try !connection.query("SELECT 1 FROM inbox WHERE message_id = ?", [.text(messageId)]).isEmpty
    }

    /// Records `messageId` as handled. Throws `SagaStoreError.duplicateMessage` if it already is, which
    /// inside the handling transaction means: roll back, the message was processed before.
    public func recordInbox(messageId: String, queue: String, at date: Date) throws {
        try mapUniqueness(.duplicateMessage(messageId: messageId)) {
            try connection.run(
                "INSERT INTO inbox (message_id, queue, processed_at) VALUES (?, ?, ?)",
                [.text(messageId), .text(queue), SQLiteValue(date)]
            )
        }
    }

    /// Records `messageId` as handled unless it already is; returns false for a message seen before.
    /// One statement where `inboxContains` then `recordInbox` take two: inside the handling transaction
    /// (or savepoint) the row disappears again if the handling fails.
    public func recordInboxIfAbsent(messageId: String, queue: String, at date: Date) throws -> Bool {
        try connection.run(
            "INSERT OR IGNORE INTO inbox (message_id, queue, processed_at) VALUES (?, ?, ?)",
            [.text(messageId), .text(queue), SQLiteValue(date)]
        ) == 1
    }

    /// Forgets entries processed before `date` (deduplication only needs to cover the redelivery
    /// window); returns how many were removed.
    @discardableResult
    public func purgeInbox(olderThan date: Date) throws -> Int {
        try connection.run("DELETE FROM inbox WHERE processed_at < ?", [SQLiteValue(date)])
    }
}
