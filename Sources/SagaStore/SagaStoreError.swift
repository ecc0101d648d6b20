/// A failure with a meaning in the saga domain (as opposed to `SQLiteError`, which is SQLite's view).
/// Each case carries the context needed to log it or act on it without parsing a message.
public enum SagaStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Optimistic concurrency lost: the saga was changed, created or deleted by someone else since it
    /// was loaded (or the expected version is simply wrong). Reload and handle the message again.
    case conflict(sagaType: String, correlationId: String)
    /// The message id is already recorded (inbox, outbox or timeout): the work was done before.
    case duplicateMessage(messageId: String)
    /// The database was written by a newer version of this software; opening it could corrupt it.
    case schemaTooNew(found: Int, supported: Int)
    /// The database has an older schema and was opened for reading only (`migrate: false`): upgrading
    /// it is the endpoint's job, not an inspection's (an older endpoint may still be running on it).
    case schemaTooOld(found: Int, supported: Int)
    /// The file holds the store's tables but no schema version (`user_version` 0), as after a rebuild
    /// with sqlite3's `.dump`: which migrations it needs cannot be told, so it is not touched.
    case schemaVersionMissing(tables: [String], supported: Int)
    /// A stored row cannot be turned back into a record (wrong type, bad JSON): a bug or a hand edit.
    case corruptRow(table: String, detail: String)
    /// A value for a TEXT column (saga state JSON) is not valid UTF-8, so storing it would alter it.
    case invalidText(table: String, column: String)

    /// Only a lost optimistic race is worth retrying as-is; the others will fail the same way again.
    public var isRetryable: Bool {
        if case .conflict = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .conflict(let sagaType, let correlationId):
            return "saga \(sagaType) [\(correlationId)] was changed concurrently (version conflict)"
        case .duplicateMessage(let messageId):
            return "message \(messageId) was already recorded"
        case .schemaTooNew(let found, let supported):
            return "database schema version \(found) is newer than the supported version \(supported); "
                + "upgrade this program instead of opening the database with it"
        case .schemaTooOld(let found, let supported):
            return "database schema version \(found) is older than this program's \(supported); start the endpoint "
                + "(which upgrades it) or inspect it with the version that wrote it"
        case .schemaVersionMissing(let tables, let supported):
            return "database has the saga store's tables (\(tables.joined(separator: ", "))) but no schema version "
                + "(PRAGMA user_version is 0), as after a rebuild with sqlite3's .dump, which leaves it out; with no "
                + "endpoint running on it, set the version of the file it was rebuilt from (sqlite3 FILE "
                + "\"PRAGMA user_version = \(supported)\" for one this version wrote) or restore a backup"
        case .corruptRow(let table, let detail):
            return "corrupt row in \(table): \(detail)"
        case .invalidText(let table, let column):
            return "value for \(table).\(column) is not valid UTF-8"
        }
    }
}
