import Foundation
import Testing
@testable import SagaStore

@Suite struct SchemaTests {
    @Test func migrationSetsUserVersionAndCreatesTables() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        #expect(try store.storedSchemaVersion() == SagaStore.schemaVersion)
        #expect(SagaStore.schemaVersion >= 1)
        let tables = try store.connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).compactMap { $0[0].textValue }
        #expect(tables == ["deliveries", "failures", "inbox", "outbox", "sagas", "timeouts"])
        let indexes = Set(
            try store.connection.query("SELECT name FROM sqlite_master WHERE type = 'index'").compactMap {
                $0[0].textValue
            })
        #expect(indexes.isSuperset(of: [
            "inbox_by_processed_at", "outbox_by_incoming", "outbox_by_dispatched_at",
            "timeouts_by_due_at", "timeouts_by_saga",
        ]))
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
}
