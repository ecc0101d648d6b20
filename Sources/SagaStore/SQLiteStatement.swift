import CSQLite
import Foundation

/// One prepared statement. Internal: only `SQLiteConnection` creates, caches and runs these, always on
/// the connection's thread, so it is no more `Sendable` than the connection.
///
/// A statement is used as bind → step… → reset. `reset()` must happen after every use, even a failed
/// one, or the statement keeps its read transaction open and its bindings alive.
final class SQLiteStatement {
    let handle: OpaquePointer
    let sql: String
    private let db: OpaquePointer
    /// Result column names, read once at prepare time (they cannot change without a re-prepare that
    /// changes the SQL, and the SQL is the cache key).
    let columnNames: [String]

    init(db: OpaquePointer, sql: String, persistent: Bool) throws(SQLiteError) {
        var statement: OpaquePointer?
        var hasMoreStatements = false
        // PERSISTENT tells SQLite the statement will live long (it is cached), so it avoids lookaside memory.
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let rc = sql.withCString { cSQL in
            var tail: UnsafePointer<CChar>?
            let rc = sqlite3_prepare_v3(db, cSQL, -1, flags, &statement, &tail)
            // `tail` points into the temporary C string, so it must be inspected inside this closure.
            hasMoreStatements = tail.map { !Self.isBlank($0) } ?? false
            return rc
        }
        guard rc == SQLITE_OK else {
            let error = SQLiteError(resultCode: rc, db: db, sql: sql)
            sqlite3_finalize(statement)
            throw error
        }
        guard let statement else {
            // Empty SQL (only whitespace or comments) prepares to nothing.
            throw SQLiteError(resultCode: SQLITE_MISUSE, message: "no statement in SQL", sql: sql)
        }
        // sqlite3_prepare compiles only the first statement; silently ignoring the rest would be a bug
        // magnet, so anything but trailing whitespace is refused (use `execute` for scripts).
        if hasMoreStatements {
            sqlite3_finalize(statement)
            throw SQLiteError(
                resultCode: SQLITE_MISUSE,
                message: "more than one statement; use execute(_:) for multi-statement SQL",
                sql: sql
            )
        }
        self.handle = statement
        self.db = db
        self.sql = sql
        let count = sqlite3_column_count(statement)
        self.columnNames = (0..<count).map { index in
            sqlite3_column_name(statement, index).map { String(cString: $0) } ?? ""
        }
    }

    deinit {
        sqlite3_finalize(handle)
    }

    private static func isBlank(_ pointer: UnsafePointer<CChar>) -> Bool {
        var cursor = pointer
        while cursor.pointee != 0 {
            switch UInt8(bitPattern: cursor.pointee) {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: ";"):
                cursor += 1
            default:
                return false
            }
        }
        return true
    }

    private func error(_ rc: Int32) -> SQLiteError {
        SQLiteError(resultCode: rc, db: db, sql: sql)
    }

    // MARK: Binding

    func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard values.count == expected else {
            throw SQLiteError(
                resultCode: SQLITE_RANGE,
                message: "statement has \(expected) parameters but \(values.count) values were bound",
                sql: sql
            )
        }
        for (offset, value) in values.enumerated() {
            let rc = bind(value, at: Int32(offset + 1))
            guard rc == SQLITE_OK else { throw error(rc) }
        }
    }

    private func bind(_ value: SQLiteValue, at index: Int32) -> Int32 {
        switch value {
        case .null:
            return sqlite3_bind_null(handle, index)
        case .integer(let value):
            return sqlite3_bind_int64(handle, index, value)
        case .real(let value):
            return sqlite3_bind_double(handle, index, value)
        case .text(let value):
            // TRANSIENT makes SQLite copy the bytes, so the Swift buffer only has to live for this call.
            // An empty string may have no base address; a NULL pointer would bind SQL NULL, not ''.
            var text = value
            return text.withUTF8 { buffer in
                guard let base = buffer.baseAddress, buffer.count > 0 else {
                    return csaga_sqlite3_bind_text_transient(handle, index, "", 0)
                }
                return base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    csaga_sqlite3_bind_text_transient(handle, index, $0, Int32(buffer.count))
                }
            }
        case .blob(let data):
            // Same NULL-pointer trap as text: an empty blob must stay an (empty) blob.
            guard !data.isEmpty else { return sqlite3_bind_zeroblob(handle, index, 0) }
            return data.withUnsafeBytes { buffer in
                csaga_sqlite3_bind_blob_transient(handle, index, buffer.baseAddress, Int32(buffer.count))
            }
        }
    }

    // MARK: Stepping

    /// Advances one row: true when positioned on a row, false when done.
    func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw error(rc)
        }
    }

    /// Returns the statement to its initial state and drops the bindings. The return code of
    /// `sqlite3_reset` only repeats the last step's error, which was already reported.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Copies the current row out of SQLite-owned memory (valid only until the next step/reset).
    func currentRow() -> SQLiteRow {
        var values: [SQLiteValue] = []
        values.reserveCapacity(columnNames.count)
        for index in 0..<Int32(columnNames.count) {
            values.append(column(at: index))
        }
        return SQLiteRow(columns: columnNames, values: values)
    }

    private func column(at index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(handle, index))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(handle, index))
        case SQLITE_TEXT:
            // Fetch the pointer before the length, as SQLite documents; the length excludes the NUL and
            // copes with embedded NULs, which String(cString:) would not.
            guard let pointer = sqlite3_column_text(handle, index) else { return .text("") }
            let count = Int(sqlite3_column_bytes(handle, index))
            return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            // A zero-length blob comes back as a NULL pointer.
            guard let pointer = sqlite3_column_blob(handle, index) else { return .blob(Data()) }
            let count = Int(sqlite3_column_bytes(handle, index))
            return .blob(Data(bytes: pointer, count: count))
        default:
            return .null
        }
    }
}
