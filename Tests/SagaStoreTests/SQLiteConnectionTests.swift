import CSQLite
import Foundation
import Testing
@testable import SagaStore

@Suite struct SQLiteConnectionTests {
    @Test func opensInWALModeWithConfiguredPragmas() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database, options: .init(synchronous: .normal))

        #expect(try connection.query("PRAGMA journal_mode").first?[0] == .text("wal"))
        #expect(try connection.query("PRAGMA synchronous").first?[0] == .integer(1))  // NORMAL
        #expect(try connection.query("PRAGMA foreign_keys").first?[0] == .integer(1))
        #expect(try connection.query("PRAGMA busy_timeout").first?[0] == .integer(5000))
    }

    // Two processes starting on a new file: switching it to WAL needs an exclusive lock, and SQLite
    // answered "database is locked" at once instead of waiting (the busy handler does not apply there).
    @Test func waitsForTheLockToSwitchANewFileToWAL() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        // SQLite takes the store's page cache wrapper only before its first use in the process.
        _ = SQLitePageCacheGuard.installed
        var other: OpaquePointer?
        #expect(sqlite3_open_v2(database.path, &other, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK)
        defer { sqlite3_close_v2(other) }
        #expect(sqlite3_exec(other, "CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)", nil, nil, nil) == SQLITE_OK)
        let holder = UnsafeSendable(other)
        let release = Thread {
            usleep(300_000)
            sqlite3_exec(holder.value, "COMMIT", nil, nil, nil)
        }
        release.start()

        let connection = try openConnection(database)
        #expect(try connection.query("PRAGMA journal_mode").first?[0] == .text("wal"))
        #expect(try connection.query("SELECT count(*) FROM t").first?[0] == .integer(1), "waited for the commit")
    }

    // After a disk-full or I/O error SQLite may roll back the whole transaction by itself. A group commit
    // goes on with the next message's savepoint: that savepoint then ran in autocommit mode and was
    // committed on its own, and only the final COMMIT failed ("no transaction is active"), so some of
    // a batch reported as failed had been committed. (ROLLBACK stands in for SQLite's own rollback.)
    @Test func nothingRunsOnceSQLiteRolledTheTransactionBack() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        try connection.execute("CREATE TABLE t(x)")
        struct Failed: Error {}
        var later: (any Error)?
        #expect(throws: SQLiteError.self) {
            try connection.transaction {
                try connection.run("INSERT INTO t VALUES (1)")
                try? connection.savepoint("m1") {
                    try connection.run("INSERT INTO t VALUES (2)")
                    try connection.execute("ROLLBACK")
                    throw Failed()
                }
                do {
                    try connection.savepoint("m2") { try connection.run("INSERT INTO t VALUES (3)") }
                } catch {
                    later = error
                }
            }
        }
        #expect((later as? SQLiteError)?.code == .abort, "the next message's savepoint does not run")
        #expect(try connection.query("SELECT count(*) FROM t").first?[0] == .integer(0), "nothing committed")
        #expect(!connection.isInTransaction)
        // The connection is usable afterwards.
        try connection.transaction { try connection.run("INSERT INTO t VALUES (4)") }
        #expect(try connection.query("SELECT count(*) FROM t").first?[0] == .integer(1))
    }

    @Test func defaultSynchronousIsFull() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        #expect(try connection.query("PRAGMA synchronous").first?[0] == .integer(2))  // FULL
    }

    @Test func valuesRoundTripExactly() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        try connection.execute("CREATE TABLE t (a, b, c, d, e, f, g)")
        let values: [SQLiteValue] = [
            .null, .integer(.min), .real(1.5), .text("héllo\u{0}wörld"), .text(""),
            .blob(Data([0, 1, 2, 255])), .blob(Data()),
        ]
        #expect(try connection.run("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", values) == 1)
        let row = try #require(try connection.query("SELECT * FROM t").first)
        #expect(row.values == values)
        #expect(row.columns == ["a", "b", "c", "d", "e", "f", "g"])
        #expect(row[column: "c"] == .real(1.5))
    }

    @Test func statementsAreCachedBySQLText() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        let before = connection.cachedStatementCount
        for i in 0..<10 {
            _ = try connection.query("SELECT ?", [.integer(Int64(i))])
        }
        #expect(connection.cachedStatementCount == before + 1)
    }

    @Test func cacheEvictsBeyondCapacity() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database, options: .init(statementCacheCapacity: 3))
        for i in 0..<10 {
            #expect(try connection.query("SELECT \(i)").first?[0] == .integer(Int64(i)))
        }
        #expect(connection.cachedStatementCount == 3)
    }

    @Test func statementsWithTheSameLengthAndEndingAreNotConfused() throws {
        // The cache hashes a statement's length and last bytes only; equal hashes must still be told apart.
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        let tail = ", '" + String(repeating: "x", count: 40) + "' AS padding"
        let before = connection.cachedStatementCount
        for _ in 0..<3 {
            #expect(try connection.query("SELECT 1 AS value" + tail).first?[0] == .integer(1))
            #expect(try connection.query("SELECT 2 AS value" + tail).first?[0] == .integer(2))
        }
        #expect(connection.cachedStatementCount == before + 2)
    }

    @Test func misuseIsReportedNotIgnored() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)

        let wrongCount = #expect(throws: SQLiteError.self) { try connection.query("SELECT ?, ?", [1]) }
        #expect(wrongCount?.code == .range)

        let twoStatements = #expect(throws: SQLiteError.self) { try connection.run("SELECT 1; SELECT 2") }
        #expect(twoStatements?.code == .misuse)

        let syntax = #expect(throws: SQLiteError.self) { try connection.query("SELEKT 1") }
        #expect(syntax?.code == .other)
        #expect(syntax?.sql == "SELEKT 1")
        #expect(syntax?.message.contains("syntax error") == true)

        connection.close()
        let closed = #expect(throws: SQLiteError.self) { try connection.query("SELECT 1") }
        #expect(closed?.code == .misuse)
    }

    @Test func constraintErrorsCarryExtendedCodes() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        try connection.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)")
        try connection.run("INSERT INTO t VALUES ('a', 'x')")

        let duplicate = #expect(throws: SQLiteError.self) { try connection.run("INSERT INTO t VALUES ('a', 'y')") }
        #expect(duplicate?.code == .constraint)
        #expect(duplicate?.isUniquenessViolation == true)
        #expect(duplicate?.isRetryable == false)

        let notNull = #expect(throws: SQLiteError.self) { try connection.run("INSERT INTO t VALUES ('b', NULL)") }
        #expect(notNull?.code == .constraint)
        #expect(notNull?.isUniquenessViolation == false)
    }

    @Test func transactionRollsBackOnThrowAndRethrowsTheBodysError() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        try connection.execute("CREATE TABLE t (v INTEGER)")

        #expect(throws: TestError()) {
            try connection.transaction {
                try connection.run("INSERT INTO t VALUES (1)")
                throw TestError()
            }
        }
        #expect(!connection.isInTransaction)
        #expect(try connection.query("SELECT COUNT(*) FROM t").first?[0] == .integer(0))

        let result = try connection.transaction(immediate: false) {
            try connection.run("INSERT INTO t VALUES (2)")
        }
        #expect(result == 1)
        #expect(try connection.query("SELECT v FROM t").map(\.values) == [[.integer(2)]])
    }

    @Test func transactionsDoNotNest() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        let error = #expect(throws: SQLiteError.self) {
            try connection.transaction { try connection.transaction {} }
        }
        #expect(error?.code == .misuse)
        #expect(!connection.isInTransaction)
    }

    @Test func savepointRollbackUndoesOnlyItself() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        try connection.execute("CREATE TABLE t (v INTEGER)")

        try connection.transaction {
            try connection.run("INSERT INTO t VALUES (1)")
            #expect(throws: TestError()) {
                try connection.savepoint("inner \"quoted\"") {
                    try connection.run("INSERT INTO t VALUES (2)")
                    throw TestError()
                }
            }
            #expect(connection.isInTransaction)
            let kept = try connection.savepoint("kept") { try connection.run("INSERT INTO t VALUES (3)") }
            #expect(kept == 1)
        }
        let values = try connection.query("SELECT v FROM t ORDER BY v").map { $0[0] }
        #expect(values == [.integer(1), .integer(3)])
    }

    @Test func busyLockMapsToRetryableBusy() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let holder = try openConnection(database)
        let impatient = try openConnection(database, options: .init(busyTimeout: .zero))
        try holder.execute("CREATE TABLE t (v INTEGER)")

        try holder.run("BEGIN IMMEDIATE")
        let error = #expect(throws: SQLiteError.self) {
            try impatient.transaction { try impatient.run("INSERT INTO t VALUES (1)") }
        }
        #expect(error?.code == .busy)
        #expect(error?.isRetryable == true)
        #expect(!impatient.isInTransaction)

        // WAL: a reader is not blocked by the writer.
        #expect(try impatient.query("SELECT COUNT(*) FROM t").first?[0] == .integer(0))

        try holder.run("COMMIT")
        try impatient.transaction { try impatient.run("INSERT INTO t VALUES (1)") }
        #expect(try holder.query("SELECT COUNT(*) FROM t").first?[0] == .integer(1))
    }
}

/// Hands a C handle to the thread that releases the lock; the test touches it from there only after
/// the main thread is done with it until then (it only waits in `openConnection`).
private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
