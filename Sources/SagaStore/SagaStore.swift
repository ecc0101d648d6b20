import Foundation
public import Logging

/// Durable storage for a saga endpoint: saga state, the inbox (deduplication), the outbox (reliable
/// publishing), timeouts and failure counts, all in one SQLite file so that one local transaction
/// covers "message handled + state changed + messages to send" (NServiceBus-style SQL persistence
/// with an outbox).
///
/// Like its `SQLiteConnection`, a store is not `Sendable` and must stay on the thread (or actor) that
/// created it. Several stores (threads or processes) may open the same file; writers serialize on
/// SQLite's write lock, and saga updates additionally use optimistic versions.
///
/// All methods are synchronous and may block on disk I/O or on another writer (up to the busy timeout),
/// so call them from a dedicated thread, never from the cooperative pool. They throw `SQLiteError` or
/// `SagaStoreError`.
public final class SagaStore {
    public typealias Options = SQLiteConnection.Options

    /// The underlying connection, for diagnostics and ad-hoc queries.
    public let connection: SQLiteConnection
    let logger: Logger
    let headerCoding = HeaderCoding()
    /// Current savepoint nesting; names savepoints by depth, so the few distinct names stay cacheable.
    private var savepointDepth = 0

    /// The schema version this build creates and understands.
    public static var schemaVersion: Int { SagaStoreSchema.currentVersion }

    /// Opens (creating if needed) the store at `path` and migrates its schema to `schemaVersion`.
    /// Throws `SagaStoreError.schemaTooNew` for a database written by a newer version. With `migrate`
    /// false (tools that only look) an older schema is left alone and refused with `.schemaTooOld`.
    public init(
        path: String,
        options: Options = Options(),
        logger: Logger = Logger(label: "SagaStore"),
        migrate: Bool = true
    ) throws {
        self.logger = logger
        self.connection = try SQLiteConnection(path: path, options: options, logger: logger)
        if migrate {
            try SagaStoreSchema.migrate(connection, logger: logger)
        } else {
            let found = try SagaStoreSchema.userVersion(connection)
            if found > SagaStoreSchema.currentVersion {
                throw SagaStoreError.schemaTooNew(found: found, supported: SagaStoreSchema.currentVersion)
            }
            try SagaStoreSchema.refuseUnversionedTables(connection, version: found)
            if found < SagaStoreSchema.currentVersion {
                throw SagaStoreError.schemaTooOld(found: found, supported: SagaStoreSchema.currentVersion)
            }
        }
    }

    public var path: String { connection.path }

    /// Closes the connection; later calls throw `SQLiteError` with code `.misuse`.
    public func close() {
        connection.close()
    }

    /// The schema version recorded in the file (`PRAGMA user_version`).
    public func storedSchemaVersion() throws -> Int {
        try SagaStoreSchema.userVersion(connection)
    }

    // MARK: Transactions

    /// Runs `body` in one transaction (IMMEDIATE by default: takes the write lock first, see
    /// `SQLiteConnection.transaction`). `body` receives this store; any store method may be used in it.
    /// Commits when `body` returns, rolls back and rethrows its error when it throws.
    @discardableResult
    public func transaction<T>(immediate: Bool = true, _ body: (SagaStore) throws -> T) throws -> T {
        try connection.transaction(immediate: immediate) { try body(self) }
    }

    /// Runs `body` in a savepoint: on throw only the work done inside it is undone, and an enclosing
    /// transaction continues. Nests freely.
    @discardableResult
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        savepointDepth += 1
        defer { savepointDepth -= 1 }
        return try connection.savepoint("saga_store_\(savepointDepth)", body)
    }

    /// Makes a multi-statement operation all-or-nothing: a savepoint inside the caller's transaction,
    /// or an IMMEDIATE transaction of its own (never a deferred one, which could fail on lock upgrade).
    func atomically<T>(_ body: () throws -> T) throws -> T {
        if connection.isInTransaction {
            return try savepoint(body)
        }
        return try connection.transaction(immediate: true, body)
    }

    /// Maps a PRIMARY KEY / UNIQUE violation to the domain error the caller can act on.
    @discardableResult
    func mapUniqueness<T>(_ error: @autoclosure () -> SagaStoreError, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let sqliteError as SQLiteError where sqliteError.isUniquenessViolation {
            throw error()
        }
    }

    func count(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> Int {
        let row = try connection.query(sql, bindings).first
        return Int(row?[0].integerValue ?? 0)
    }
}
