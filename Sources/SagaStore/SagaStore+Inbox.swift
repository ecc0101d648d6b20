public import Foundation

/// The inbox: ids of messages already handled, so a redelivered message (the broker delivers at least
/// once) is recognized and its side effects are not applied twice. Recorded in the same transaction as
/// the handling itself.
extension SagaStore {
    /// Finds the inbox row of `?1` (message id) and `?2` (its `KeyHash`).
    static let inboxById = "id_hash = ?2 AND message_id = ?1"

    public func inboxContains(messageId: String) throws -> Bool {
        try !connection.query(
            "SELECT 1 FROM inbox WHERE \(Self.inboxById)",
            [.text(messageId), .integer(KeyHash.message(id: messageId))]
        ).isEmpty
    }

    /// Records `messageId` as handled. Throws `SagaStoreError.duplicateMessage` if it already is, which
    /// inside the handling transaction means: roll back, the message was processed before.
    public func recordInbox(messageId: String, queue: String, at date: Date) throws {
        guard try recordInboxIfAbsent(messageId: messageId, queue: queue, at: date) else {
            throw SagaStoreError.duplicateMessage(messageId: messageId)
        }
    }

    /// Records `messageId` as handled unless it already is; returns false for a message seen before.
    /// One statement where `inboxContains` then `recordInbox` take two: inside the handling transaction
    /// (or savepoint) the row disappears again if the handling fails. The index on the id's hash is not
    /// unique (hashes may collide), so the statement checks for the id itself.
    public func recordInboxIfAbsent(messageId: String, queue: String, at date: Date) throws -> Bool {
        try connection.run(
            """
            INSERT INTO inbox (id_hash, message_id, queue, processed_at)
            SELECT ?2, ?1, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE \(Self.inboxById))
            """,
            [.text(messageId), .integer(KeyHash.message(id: messageId)), .text(queue), SQLiteValue(date)]
        ) == 1
    }

    /// Forgets entries processed before `date` (deduplication only needs to cover the redelivery
    /// window); returns how many were removed.
    @discardableResult
    public func purgeInbox(olderThan date: Date) throws -> Int {
        try connection.run("DELETE FROM inbox WHERE processed_at < ?", [SQLiteValue(date)])
    }
}
