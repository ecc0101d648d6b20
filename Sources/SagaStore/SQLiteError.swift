import CSQLite

/// An error reported by SQLite (or by this wrapper on SQLite's behalf, e.g. a wrong binding count).
///
/// Modelled on postgres-nio's `PSQLError`: a struct, not an enum, so that new codes can be added without
/// breaking anyone's exhaustive `switch`; callers match on `code` with `==` and read the context fields.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// A coarse, stable classification of the failure, derived from the primary result code.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case busy, locked, constraint, full, ioError, corrupt, misuse, readOnly, cantOpen
            case notADatabase, interrupt, noMemory, tooBig, schema, mismatch, range, permission, abort
            case other
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Another connection holds a lock we need (`SQLITE_BUSY`); retrying later usually succeeds.
        public static let busy = Code(.busy)
        /// A conflict inside this connection or a shared cache (`SQLITE_LOCKED`); also retryable.
        public static let locked = Code(.locked)
        /// A PRIMARY KEY, UNIQUE, NOT NULL, CHECK or FOREIGN KEY constraint failed.
        public static let constraint = Code(.constraint)
        public static let full = Code(.full)
        public static let ioError = Code(.ioError)
        public static let corrupt = Code(.corrupt)
        /// The API was used wrongly (including the wrapper's own checks, e.g. a closed connection).
        public static let misuse = Code(.misuse)
        public static let readOnly = Code(.readOnly)
        public static let cantOpen = Code(.cantOpen)
        public static let notADatabase = Code(.notADatabase)
        public static let interrupt = Code(.interrupt)
        public static let noMemory = Code(.noMemory)
        public static let tooBig = Code(.tooBig)
        public static let schema = Code(.schema)
        public static let mismatch = Code(.mismatch)
        /// A bind index or parameter count out of range.
        public static let range = Code(.range)
        public static let permission = Code(.permission)
        public static let abort = Code(.abort)
        /// Anything not classified above (`SQLITE_ERROR` such as a syntax error, and rarer codes).
        public static let other = Code(.other)

        init(primaryResultCode: Int32) {
            switch primaryResultCode {
            case SQLITE_BUSY: self = .busy
            case SQLITE_LOCKED: self = .locked
            case SQLITE_CONSTRAINT: self = .constraint
            case SQLITE_FULL: self = .full
            case SQLITE_IOERR: self = .ioError
            case SQLITE_CORRUPT: self = .corrupt
            case SQLITE_MISUSE: self = .misuse
            case SQLITE_READONLY: self = .readOnly
            case SQLITE_CANTOPEN: self = .cantOpen
            case SQLITE_NOTADB: self = .notADatabase
            case SQLITE_INTERRUPT: self = .interrupt
            case SQLITE_NOMEM: self = .noMemory
            case SQLITE_TOOBIG: self = .tooBig
            case SQLITE_SCHEMA: self = .schema
            case SQLITE_MISMATCH: self = .mismatch
            case SQLITE_RANGE: self = .range
            case SQLITE_PERM: self = .permission
            case SQLITE_ABORT: self = .abort
            default: self = .other
            }
        }

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// The extended result code (extended codes are enabled on every connection), e.g. 1555 for
    /// `SQLITE_CONSTRAINT_PRIMARYKEY`. The low byte is the primary code that `code` is derived from.
    public let resultCode: Int32
    /// SQLite's own explanation (`sqlite3_errmsg`), captured right after the failing call.
    public let message: String
    /// The statement that failed, when there was one.
    public let sql: String?
    /// The database file, when opening it failed ("unable to open database file" does not say which).
    public internal(set) var path: String?

    public init(resultCode: Int32, message: String, sql: String? = nil) {
        self.code = Code(primaryResultCode: resultCode & 0xFF)
        self.resultCode = resultCode
        self.message = message
        self.sql = sql
    }

    /// Builds the error from the connection's last error. Must be called before any other SQLite call
    /// on `db`, which would overwrite the message.
    init(resultCode: Int32, db: OpaquePointer?, sql: String?) {
        let message = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(resultCode))
        self.init(resultCode: resultCode, message: message, sql: sql)
    }

    public var primaryResultCode: Int32 { resultCode & 0xFF }

    /// Busy and locked mean "someone else is in the way right now": the same work can simply be retried.
    public var isRetryable: Bool { code == .busy || code == .locked }

    /// A PRIMARY KEY or UNIQUE clash: the row already exists (the store maps this to domain errors).
    public var isUniquenessViolation: Bool {
        resultCode == Self.constraintPrimaryKey || resultCode == Self.constraintUnique
    }

    // The C macros are `(SQLITE_CONSTRAINT | (n<<8))`, which Swift does not import reliably.
    static let constraintPrimaryKey: Int32 = SQLITE_CONSTRAINT | (6 << 8)
    static let constraintUnique: Int32 = SQLITE_CONSTRAINT | (8 << 8)
    /// `SQLITE_READONLY_DBMOVED`: the database file was renamed, deleted or replaced while open.
    public static let readOnlyDatabaseMoved: Int32 = SQLITE_READONLY | (4 << 8)

    public var description: String {
        var text = "SQLiteError(\(code), resultCode: \(resultCode)): \(message)"
        if let sql { text += " [sql: \(sql)]" }
        if let path { text += " [path: \(path)]" }
        return text
    }
}
