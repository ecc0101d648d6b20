import CSQLite
public import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One open SQLite database connection (a `sqlite3*` handle), with a prepared-statement cache.
///
/// ### Threading: deliberately not `Sendable`
/// sqlite-nio wraps its handle in an `@unchecked Sendable` box and relies on SQLite's serialized mode
/// plus a thread pool. We take the stricter route: the connection is opened with `SQLITE_OPEN_NOMUTEX`
/// (no per-call mutex), and the class is *not* `Sendable`, so the compiler keeps every use inside the
/// isolation domain that created it. Its owner confines it to one thread (in the endpoint, an actor
/// running on a `DedicatedThreadExecutor`), which also keeps blocking disk I/O off the cooperative pool.
/// Concurrency *between* connections (threads or processes) is SQLite's job: WAL mode lets readers run
/// beside the single writer, and the busy timeout makes a writer wait for the lock instead of failing.
///
/// ### Memory
/// Every value is copied out of SQLite-owned memory before a statement is stepped again or reset, so
/// returned rows never point into SQLite.
public final class SQLiteConnection {
    /// Settings applied when the connection is opened.
    public struct Options: Sendable, Equatable {
        /// `PRAGMA synchronous`: how hard SQLite pushes commits to stable storage.
        public enum Synchronous: String, Sendable, Equatable {
            case off = "OFF"
            /// In WAL mode: durable against application crashes; the last commits may be lost on power loss.
            case normal = "NORMAL"
            /// Every commit is fsynced before it returns: an acknowledged message is never lost.
            case full = "FULL"
            case extra = "EXTRA"
        }

        public var synchronous: Synchronous
        /// How long a statement waits for another connection's lock before failing with `.busy`.
        public var busyTimeout: Duration
        /// Maximum number of prepared statements kept per connection (0 disables caching).
        public var statementCacheCapacity: Int
        /// `PRAGMA cache_size` in KiB; nil keeps SQLite's default (2 MiB). A transaction that dirties more
        /// pages than the cache holds spills them into the WAL before it commits, writing pages again.
        public var cacheSizeKiB: Int?
        /// `PRAGMA wal_autocheckpoint` in pages; nil keeps SQLite's default (1000 pages, 4 MiB). The
        /// commit that crosses it copies the WAL's pages into the database file and syncs it.
        public var walAutocheckpointPages: Int?
        /// Whether opening switches the file to WAL mode, which is persistent in the file. False for a tool
        /// that only looks at a file that may not be a store at all (a mistyped `--database`): the switch
        /// changed another application's database before the tool found out and refused it.
        public var switchesToWAL: Bool

        public init(
            synchronous: Synchronous = .full,
            busyTimeout: Duration = .seconds(5),
            statementCacheCapacity: Int = 64,
            cacheSizeKiB: Int? = nil,
            walAutocheckpointPages: Int? = nil,
            switchesToWAL: Bool = true
        ) {
            self.synchronous = synchronous
            self.busyTimeout = busyTimeout
            self.statementCacheCapacity = statementCacheCapacity
            self.cacheSizeKiB = cacheSizeKiB
            self.walAutocheckpointPages = walAutocheckpointPages
            self.switchesToWAL = switchesToWAL
        }
    }

    public let path: String
    public let options: Options
    let logger: Logger
    /// nil once closed; every entry point checks it so use-after-close is an error, not a crash.
    private(set) var db: OpaquePointer?
    /// What the WAL hook calls after each commit (`checkpointInBackground`); kept alive while registered.
    var walHook: WALHook?
    /// The database is in WAL mode (a file database whose switch worked).
    private(set) var isWAL = false
    /// In WAL mode, the `-wal` and `-shm` files as SQLite names them: beside the file it opened, with
    /// symbolic links resolved (not beside `path`, which may be a link), for `movedDatabaseFile`.
    private(set) var walCompanionPaths: [String] = []
    /// The `-wal` and `-shm` files' identities at the first write transaction (`movedDatabaseFile`).
    var walFiles: [FileIdentity]?
    private var cache: SQLiteStatementCache
    /// True while `transaction`'s body runs. SQLite may roll a whole transaction back on its own after
    /// some errors (disk full, I/O error, out of memory); a caller that goes on after such an error (a
    /// group commit moves on to the next message's savepoint) would then run its statements in autocommit
    /// mode, each committed by itself, and the final COMMIT would fail. So statements refuse to run then.
    var inTransactionBody = false
    /// The error after which SQLite rolled back the transaction whose body runs: the rest of it fails
    /// with this error too (its code tells a caller whether retrying the whole can help).
    var transactionLostTo: SQLiteError?

    /// Opens (creating if needed) the database at `path` and applies `options`: WAL journal mode,
    /// `synchronous`, the busy timeout and foreign-key enforcement.
    public init(
        path: String,
        options: Options = Options(),
        logger: Logger = Logger(label: "SagaStore.SQLite")
    ) throws(SQLiteError) {
        self.path = path
        self.options = options
        self.logger = logger
        self.cache = SQLiteStatementCache(capacity: options.statementCacheCapacity)

        if !SQLitePageCacheGuard.installed {
            logger.debug("SQLite was initialized before the store: its page cache is used unwrapped")
        }
        Self.createPrivateFileIfMissing(path)
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            // Even a failed open usually allocates a handle that carries the message and must be closed.
            var error = SQLiteError(resultCode: rc, db: handle, sql: nil)
            error.path = path
            sqlite3_close_v2(handle)
            throw error
        }
        self.db = handle
        // Extended codes distinguish e.g. a PRIMARY KEY clash from a NOT NULL failure.
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, Self.milliseconds(options.busyTimeout))

        do {
            // WAL: readers never block the writer and vice versa, and commits append instead of
            // rewriting pages. The mode is persistent in the file, but setting it again is cheap.
            let mode = options.switchesToWAL ? try switchToWAL()
                : try query("PRAGMA journal_mode").first?[0].textValue?.lowercased()
            isWAL = mode == "wal"
            if isWAL, let name = sqlite3_db_filename(handle, "main") {
                let file = String(cString: name)
                walCompanionPaths = [file + "-wal", file + "-shm"]
            }
            if options.switchesToWAL && mode != "wal" && path != ":memory:" && !path.isEmpty {
                logger.warning(
                    "SQLite did not switch to WAL journal mode",
                    metadata: ["path": "\(path)", "journal_mode": "\(mode ?? "unknown")"]
                )
            }
            try execute("PRAGMA synchronous = \(options.synchronous.rawValue)")
            try execute("PRAGMA foreign_keys = ON")
            // Savepoints (one per message in a group commit) journal the pages they change in a
            // sub-journal, which by default is a temporary file: dozens of pwrite calls per message.
            // The sub-journal only matters until the transaction ends, so memory is the right place.
            try execute("PRAGMA temp_store = MEMORY")
            if let kib = options.cacheSizeKiB {
                // Negative: a size in KiB rather than in pages.
                try execute("PRAGMA cache_size = -\(max(0, kib))")
            }
            if let pages = options.walAutocheckpointPages {
                try execute("PRAGMA wal_autocheckpoint = \(max(0, pages))")
            }
        } catch {
            close()
            throw error
        }
    }

    /// Sets WAL mode and returns the journal mode in effect. Switching a file that is not in WAL mode yet
    /// (a new database) needs an exclusive lock, and SQLite answers `SQLITE_BUSY` at once when another
    /// connection holds one, without the busy handler: two processes starting on a new file failed with
    /// "database is locked". So this waits up to the busy timeout itself, as any other statement would.
    private func switchToWAL() throws(SQLiteError) -> String? {
        let deadline = ContinuousClock.now + options.busyTimeout
        while true {
            do {
                return try query("PRAGMA journal_mode = WAL").first?[0].textValue?.lowercased()
            } catch where error.code == .busy && ContinuousClock.now < deadline {
                usleep(10_000)
            }
        }
    }

    /// Same as `init(path:options:logger:)`; reads well at call sites.
    public static func open(
        path: String,
        options: Options = Options(),
        logger: Logger = Logger(label: "SagaStore.SQLite")
    ) throws(SQLiteError) -> SQLiteConnection {
        try SQLiteConnection(path: path, options: options, logger: logger)
    }

    deinit {
        close()
    }

    /// Finalizes cached statements and closes the handle. Idempotent; later calls throw `.misuse`.
    public func close() {
        cache.removeAll()
        if let db, walHook != nil {
            sqlite3_wal_hook(db, nil, nil)
            walHook = nil
        }
        if let db {
            // close_v2 defers the real close if some statement were still alive, instead of failing.
            sqlite3_close_v2(db)
        }
        db = nil
    }

    public var isOpen: Bool { db != nil }

    /// True while a transaction (or an outermost savepoint) is open on this connection.
    public var isInTransaction: Bool {
        guard let db else { return false }
        return sqlite3_get_autocommit(db) == 0
    }

    /// Number of statements currently held by the cache (exposed for tests and diagnostics).
    public var cachedStatementCount: Int { cache.count }

    // MARK: Executing SQL

    /// Runs one or more statements without bindings or results (DDL, pragmas, scripts). Not cached.
    public func execute(_ sql: String) throws(SQLiteError) {
        let db = try requireOpen(sql: sql)
        try requireTransactionAlive()
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw noteFailure(SQLiteError(resultCode: rc, db: db, sql: sql)) }
    }

    /// Runs one statement and returns all its rows, copied out of SQLite.
    @discardableResult
    public func query(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> [SQLiteRow] {
        try withStatement(sql, bindings) { statement throws(SQLiteError) in
            var rows: [SQLiteRow] = []
            while try statement.step() {
                rows.append(statement.currentRow())
            }
            return rows
        }
    }

    /// Runs one statement to completion and returns the number of rows it inserted, updated or deleted.
    @discardableResult
    public func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        try withStatement(sql, bindings) { statement throws(SQLiteError) in
            while try statement.step() {}  // e.g. a RETURNING clause whose rows the caller ignores
            return Int(sqlite3_changes(try requireOpen(sql: sql)))
        }
    }

    /// The rowid of the last successful INSERT on this connection.
    public var lastInsertRowID: Int64 {
        guard let db else { return 0 }
        return sqlite3_last_insert_rowid(db)
    }

    // MARK: Internals

    /// Prepares (or reuses) the statement, binds, runs `body`, and always resets the statement, so a
    /// cached statement never leaks an open read transaction or stale bindings into its next use.
    private func withStatement<T>(
        _ sql: String,
        _ bindings: [SQLiteValue],
        _ body: (SQLiteStatement) throws(SQLiteError) -> T
    ) throws(SQLiteError) -> T {
        try requireTransactionAlive()
        let statement = try preparedStatement(sql)
        defer { statement.reset() }
        do throws(SQLiteError) {
            try statement.bind(bindings)
            return try body(statement)
        } catch {
            throw noteFailure(error)
        }
    }

    /// Inside `transaction`'s body, refuses to run a statement once SQLite has rolled the transaction back.
    func requireTransactionAlive() throws(SQLiteError) {
        guard inTransactionBody else { return }
        if let lost = transactionLostTo { throw lost }
        if !isInTransaction {
            throw SQLiteError(resultCode: SQLITE_ABORT, message: "the transaction is no longer open", sql: nil)
        }
    }

    /// Records `error` as the end of the transaction whose body runs if SQLite rolled it back after it.
    private func noteFailure(_ error: SQLiteError) -> SQLiteError {
        if inTransactionBody, transactionLostTo == nil, !isInTransaction { transactionLostTo = error }
        return error
    }

    private func preparedStatement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        let db = try requireOpen(sql: sql)
        if let cached = cache.statement(for: sql) { return cached }
        let statement = try SQLiteStatement(db: db, sql: sql, persistent: cache.capacity > 0)
        cache.insert(statement)
        return statement
    }

    func requireOpen(sql: String?) throws(SQLiteError) -> OpaquePointer {
        guard let db else {
            throw SQLiteError(resultCode: SQLITE_MISUSE, message: "connection to \(path) is closed", sql: sql)
        }
        return db
    }

    static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let millis = seconds.multipliedReportingOverflow(by: 1000)
        guard !millis.overflow else { return seconds < 0 ? 0 : .max }
        return Int32(clamping: max(0, millis.partialValue + attoseconds / 1_000_000_000_000_000))
    }
}

/// A file's device and inode: what tells whether a path still names the file that was opened.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64
}
