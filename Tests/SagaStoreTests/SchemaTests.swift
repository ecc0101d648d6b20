import Foundation
import LogTestSupport
import Testing
@testable import SagaStore

@Suite struct SchemaTests {
    /// A connection to a database of schema 2, as the previous release left it (no rows).
    private func version2Database(_ database: TemporaryDatabase) throws -> SQLiteConnection {
        let connection = try openConnection(database)
        for migration in SagaStoreSchema.migrations where migration.version <= 2 {
            try connection.execute(migration.sql)
        }
        try connection.execute("PRAGMA user_version = 2")
        return connection
    }

    @Test func migrationSetsUserVersionAndCreatesTables() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        #expect(try store.storedSchemaVersion() == SagaStore.schemaVersion)
        #expect(SagaStore.schemaVersion >= 1)
        let tables = try store.connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).compactMap { $0[0].textValue }
        #expect(tables == ["deliveries", "failures", "inbox", "outbox", "sagas", "sqlite_sequence", "timeouts"])
        let indexes = Set(
            try store.connection.query("SELECT name FROM sqlite_master WHERE type = 'index'").compactMap {
                $0[0].textValue
            })
        #expect(indexes.isSuperset(of: [
            "inbox_by_processed_at", "outbox_by_dispatched_at", "timeouts_by_due_at",
        ]))
        // Random-keyed indexes cost a random page write per insert: sagas keep one; timeouts and outbox
        // rows point at their owner's row number, with partial indexes on the ids for rows without one.
        #expect(try indexedColumns(store.connection, table: "sagas") == [
            ["created_at"], ["saga_type", "correlation_id"]])
        #expect(try indexedColumns(store.connection, table: "timeouts") == [
            ["due_at"], ["saga_seq", "timeout_id"], ["saga_type", "correlation_id", "timeout_id"]])
        #expect(try indexedColumns(store.connection, table: "outbox") == [
            ["dispatched_at"], ["inbox_seq", "position"], ["incoming_message_id", "position"]])
        let partial = try store.connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%' ORDER BY name"
        ).compactMap { $0[0].textValue }
        #expect(partial == ["outbox_without_inbox", "timeouts_without_saga"])
    }

    /// A new file logs one line at info; an upgrade logs each step. Failed before: a first start logged
    /// "applying schema migration" five times, which read like an upgrade of an existing store.
    @Test func aNewFileLogsItsCreationOnceAndAnUpgradeEachStep() throws {
        let fresh = TemporaryDatabase()
        defer { fresh.remove() }
        let created = CapturedLog()
        _ = try SagaStore(path: fresh.path, logger: created.logger(label: "schema", level: .info))
        #expect(created.entries.map(\.message) == ["creating the database schema"], "\(created.lines)")

        let old = TemporaryDatabase()
        defer { old.remove() }
        _ = try version2Database(old)
        let upgraded = CapturedLog()
        _ = try SagaStore(path: old.path, logger: upgraded.logger(label: "schema", level: .info))
        let steps = upgraded.entries.filter { $0.message == "applying schema migration" }.compactMap { $0.metadata["version"] }
        #expect(steps == (3...SagaStore.schemaVersion).map(String.init), "\(upgraded.lines)")
        #expect(!upgraded.lines.contains { $0.contains("creating the database schema") })
    }

    /// A database of schema 2 (as the previous release left it) is migrated with its rows intact.
    @Test func version2DatabaseMigratesWithItsRows() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        do {
            let connection = try version2Database(database)
            try connection.execute("""
                INSERT INTO sagas VALUES ('Transfer', 'c1', 'saga-1', '{"step":"debiting"}', 3, 'transfers', 'r1', 10, 20);
                INSERT INTO timeouts VALUES ('t1', 'Transfer', 'c1', 30, 'Expire', X'7B7D', '{}', 10);
                INSERT INTO inbox VALUES ('m1', 'transfers', 10);
                INSERT INTO outbox VALUES ('o1', 'm1', 0, '', 'bank', 1, 'DebitAccount', 'c1', 'transfers', '{}', X'7B7D', 10, NULL);
                """)
        }
        let store = try openStore(database)
        #expect(try store.storedSchemaVersion() == SagaStore.schemaVersion)
        let saga = try #require(try store.loadSaga(type: "Transfer", correlationId: "c1"))
        #expect(saga.sagaId == "saga-1")
        #expect(saga.version == 3)
        #expect(saga.originatorReplyTo == "transfers")
        #expect(try store.pendingTimeouts(sagaType: "Transfer", correlationId: "c1").map(\.timeoutId) == ["t1"])
        #expect(try store.inboxContains(messageId: "m1"))
        #expect(try store.connection.query("SELECT saga_seq FROM timeouts").map { $0[0].integerValue } == [1])
        #expect(try store.deleteTimeout(TimeoutKey(sagaType: "Transfer", correlationId: "c1", timeoutId: "t1")))
        #expect(try store.timeoutCount() == 0)
        #expect(try store.outbox(forIncoming: "m1").map(\.messageId) == ["o1"])
        let row = try #require(try store.outbox(forIncoming: "m1").first)
        #expect(try store.markDispatched([try #require(row.key)], at: Date()) == 1)
        // The migrated rows point at their owners' rows.
        #expect(try store.connection.query("SELECT inbox_seq FROM outbox").map { $0[0].integerValue } == [1])
    }

    private func indexedColumns(_ connection: SQLiteConnection, table: String) throws -> [[String]] {
        try connection.query("SELECT name FROM pragma_index_list('\(table)')").compactMap { $0[0].textValue }
            .map { index in
                try connection.query("SELECT name FROM pragma_index_info('\(index)') ORDER BY seqno")
                    .compactMap { $0[0].textValue }
            }
            .sorted { $0.joined(separator: ",") < $1.joined(separator: ",") }
    }

    @Test func reopeningIsIdempotentAndKeepsData() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        do {
            let store = try openStore(database)
            try store.recordInbox(messageId: "m1", queue: "q", at: date(0))
        }
        for _ in 0..<2 {
            let store = try openStore(database)
            #expect(try store.storedSchemaVersion() == SagaStore.schemaVersion)
            #expect(try store.inboxContains(messageId: "m1"))
        }
    }

    @Test func tooNewSchemaIsRefusedClearly() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        do {
            let connection = try openConnection(database)
            try connection.execute("PRAGMA user_version = 99")
        }
        let error = #expect(throws: SagaStoreError.schemaTooNew(found: 99, supported: SagaStore.schemaVersion)) {
            try openStore(database)
        }
        #expect(error?.description.contains("newer than the supported version") == true)
        #expect(error?.isRetryable == false)

        // Refusing must not have touched the file.
        let connection = try openConnection(database)
        #expect(try connection.query("PRAGMA user_version").first?[0] == .integer(99))
        #expect(try connection.query("SELECT COUNT(*) FROM sqlite_master").first?[0] == .integer(0))
    }

    // Failed before: sqlite3's `.dump` (the way to rebuild a damaged file where `.recover` is missing,
    // as on Debian 12) leaves `user_version` out, and the endpoint took the rebuilt file for an empty
    // one: it stopped with "table sagas already exists" and the whole schema, and `sagas list` said to
    // start the endpoint to upgrade it.
    @Test func tablesWithoutASchemaVersionAreRefusedSayingWhatToDo() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        do {
            let store = try openStore(database)
            try store.connection.execute("PRAGMA user_version = 0")
            store.close()
        }
        for migrate in [true, false] {
            let error = #expect(throws: (any Error).self) {
                try SagaStore(path: database.path, logger: quietLogger, migrate: migrate)
            }
            let text = "\(error.map { "\($0)" } ?? "")"
            #expect(text.contains("no schema version"), "\(text)")
            #expect(text.contains("PRAGMA user_version = \(SagaStore.schemaVersion)"), "\(text)")
            #expect(!text.contains("start the endpoint"), "\(text)")
        }
        let connection = try openConnection(database)
        #expect(try connection.query("PRAGMA user_version").first?[0] == .integer(0), "left as it was")

        // A file of someone else's tables (a library user's) still gets the store's beside them.
        let shared = TemporaryDatabase()
        defer { shared.remove() }
        try openConnection(shared).execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        #expect(try openStore(shared).storedSchemaVersion() == SagaStore.schemaVersion)
    }

    // Before, `sagas list` opened the store the endpoint's way and upgraded an older file, possibly under
    // an older endpoint still running on it.
    @Test func openingWithoutMigratingLeavesAnOlderSchemaAlone() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        _ = try version2Database(database)
        let error = #expect(throws: SagaStoreError.schemaTooOld(found: 2, supported: SagaStore.schemaVersion)) {
            try SagaStore(path: database.path, migrate: false)
        }
        #expect(error?.description.contains("start the endpoint") == true)
        let connection = try openConnection(database)
        #expect(try connection.query("PRAGMA user_version").first?[0] == .integer(2), "not upgraded")

        let current = TemporaryDatabase()
        defer { current.remove() }
        _ = try openStore(current)
        let store = try SagaStore(path: current.path, migrate: false)
        #expect(try store.storedSchemaVersion() == SagaStore.schemaVersion)
    }
}
