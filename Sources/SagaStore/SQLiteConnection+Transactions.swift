import CSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension SQLiteConnection {
    /// Runs `body` inside `BEGIN [IMMEDIATE] … COMMIT`, rolling back if it throws.
    ///
    /// `immediate` (the default) takes the write lock up front. A deferred transaction that reads first
    /// and writes later can fail with `SQLITE_BUSY` at the write *without* the busy handler waiting
    /// (the snapshot it read may be stale), which is exactly the read-modify-write a saga does.
    ///
    /// The body's error is rethrown unchanged. An error from BEGIN or COMMIT is thrown as `SQLiteError`.
    /// Transactions do not nest; use `savepoint(_:_:)` inside one.
    @discardableResult
    public func transaction<T>(immediate: Bool = true, _ body: () throws -> T) throws -> T {
        guard !isInTransaction else {
            throw SQLiteError(
                resultCode: SQLITE_MISUSE,
                message: "a transaction is already open on this connection; use savepoint to nest",
                sql: nil
            )
        }
        // Through `run`, so these tiny statements are prepared once and cached.
        try run(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED")
        if immediate, let moved = movedDatabaseFile() {
            // In rollback-journal mode SQLite refuses such a write itself (SQLITE_READONLY_DBMOVED); in WAL
            // mode it does not look, and the commit would go to a file nobody else can open any more (a
            // backup restored over it, the file or its -wal deleted): gone with the process, after the
            // caller acted on it (an endpoint acks the message). Checked under the write lock, once per
            // write transaction.
            rollbackTransaction()
            var error = SQLiteError(
                resultCode: SQLiteError.readOnlyDatabaseMoved,
                message: "\(moved) was moved, replaced or deleted since the database was opened; nothing is "
                    + "written to it any more: restart the process to open the files now at this path",
                sql: nil)
            error.path = path
            throw error
        }
        inTransactionBody = true
        transactionLostTo = nil
        let result: T
        do {
            result = try body()
        } catch {
            inTransactionBody = false
            rollbackTransaction()
            throw error
        }
        // The body may have gone on after an error that made SQLite roll everything back (see
        // `inTransactionBody`): nothing of it was committed, and the caller must know.
        do {
            try requireTransactionAlive()
        } catch {
            inTransactionBody = false
            throw error
        }
        inTransactionBody = false
        do {
            try run("COMMIT")
        } catch {
            // A failed COMMIT (e.g. disk full) leaves the transaction open; undo it so the connection
            // is usable again and nothing half-done lingers.
            rollbackTransaction()
            throw error
        }
        return result
    }

    /// Runs `body` inside `SAVEPOINT name … RELEASE name`. If it throws, the work since the savepoint is
    /// undone (`ROLLBACK TO` then `RELEASE`) and the error rethrown; an enclosing transaction stays open
    /// with its earlier work intact. Outside a transaction a savepoint behaves as a deferred transaction.
    @discardableResult
    public func savepoint<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let quoted = Self.quoteIdentifier(name)
        // Through `run`: callers use a few fixed names (the store names them by nesting depth), so the
        // statements are prepared once and cached; a group commit opens one savepoint per message.
        try run("SAVEPOINT \(quoted)")
        do {
            let result = try body()
            try run("RELEASE \(quoted)")
            return result
        } catch {
            rollbackSavepoint(quoted)
            throw error
        }
    }

    /// Runs `body` (which commits on its own: a transaction, or single statements) with `PRAGMA
    /// synchronous` set to `level`, then restores the connection's setting. For writes whose loss on a
    /// power cut is harmless, so their commit need not wait for an fsync. Not inside a transaction.
    public func withSynchronous<T>(_ level: Options.Synchronous, _ body: () throws -> T) throws -> T {
        guard level != options.synchronous else { return try body() }
        try run("PRAGMA synchronous = \(level.rawValue)")
        defer { _ = try? run("PRAGMA synchronous = \(options.synchronous.rawValue)") }
        return try body()
    }

    /// True when the file at `path` is no longer the database file this connection has open: it was
    /// renamed, deleted, or another file was put in its place (SQLite's `SQLITE_FCNTL_HAS_MOVED`, a stat of
    /// the path). False for an in-memory database.
    public var databaseFileHasMoved: Bool {
        guard let db else { return false }
        var moved: Int32 = 0
        guard sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK else { return false }
        return moved != 0
    }

    /// The file of this connection's database (the database, its `-wal` or its `-shm`) that is no longer
    /// the one it has open, if any. SQLite never deletes or replaces the `-wal` and `-shm` files while a
    /// connection to the database is open, so their identity (device and inode) when this connection
    /// first wrote must stay; checked only in WAL mode, where they exist from the first transaction on.
    func movedDatabaseFile() -> String? {
        if databaseFileHasMoved { return path }
        guard isWAL else { return nil }
        // The names SQLite uses: `path + "-wal"` is wrong when `path` is a symbolic link (SQLite resolves
        // it), and every write transaction was then refused.
        var identities: [FileIdentity] = []
        for companion in walCompanionPaths {
            var info = stat()
            guard stat(companion, &info) == 0 else { return companion }
            identities.append(FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)))
        }
        guard let first = walFiles else {
            walFiles = identities
            return nil
        }
        for (index, companion) in walCompanionPaths.enumerated() where first[index] != identities[index] {
            return companion
        }
        return nil
    }

    /// Best effort: the original error matters more than a rollback failure, which is only logged.
    private func rollbackTransaction() {
        // Some errors (SQLITE_FULL, IOERR, NOMEM, BUSY during commit) make SQLite roll back by itself;
        // a second ROLLBACK would just fail with "no transaction is active".
        guard isInTransaction else { return }
        do {
            try run("ROLLBACK")
        } catch {
            logger.error("ROLLBACK failed", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    private func rollbackSavepoint(_ quoted: String) {
        guard isInTransaction else { return }
        do {
            // ROLLBACK TO rewinds but keeps the savepoint on the stack; RELEASE pops it.
            try execute("ROLLBACK TO \(quoted); RELEASE \(quoted)")
        } catch {
            logger.error("ROLLBACK TO savepoint failed", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// SQL identifier quoting: wrap in double quotes, double any embedded ones.
    static func quoteIdentifier(_ name: String) -> String {
        // Foundation's replacingOccurrences is slow on Linux and this runs per savepoint.
        guard name.utf8.contains(UInt8(ascii: "\"")) else { return "\"" + name + "\"" }
        return "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }
}
