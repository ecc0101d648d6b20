// `--database` naming an SQLite file of another application (a mistyped path): `run` and `sagas` must refuse
// it, and leave it as it was. Compiled only with SAGA_ENDPOINT_CLI_TESTS (see CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import Foundation
import Logging
@testable import saga_endpoint
import SagaStore
import Testing

@Suite struct CLIForeignDatabaseTests {
    /// An SQLite file as another application keeps it: its own table, a rollback journal, no version.
    func foreignDatabase() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("foreign-\(UUID().uuidString).db").path
        let connection = try SQLiteConnection(path: path)
        try connection.execute("CREATE TABLE app_users (name TEXT)")
        try connection.execute("INSERT INTO app_users VALUES ('alice')")
        _ = try connection.query("PRAGMA journal_mode = DELETE")
        connection.close()
        #expect(try journalFormat(path) == 1)
        return path
    }

    /// Bytes 18 and 19 of the header: 1 for a rollback journal, 2 once the file was switched to WAL.
    func journalFormat(_ path: String) throws -> UInt8 {
        let header = try Data(contentsOf: URL(fileURLWithPath: path)).prefix(20)
        #expect(header[18] == header[19])
        return header[18]
    }

    /// The file's tables (opening it switches it to WAL: check the journal first).
    func tables(_ path: String) throws -> [String] {
        let connection = try SQLiteConnection(path: path)
        defer { connection.close() }
        return try connection.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .compactMap { $0[0].textValue }
    }

    // Failed before: `run --database` on another application's file switched it to WAL and created the
    // saga store's tables in it, without a word; the preflight only checked that it was an SQLite file.
    @Test func runRefusesAnotherApplicationsDatabaseAndLeavesItAlone() throws {
        let path = try foreignDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            try DatabasePreflight.check(path, endpoint: "transfers", logger: Logger(label: "test"))
            Issue.record("another application's database was accepted")
        } catch let error as CLIError {
            #expect(error.description.contains("tables of another application (app_users)"), "\(error)")
        }
        #expect(try journalFormat(path) == 1)
        #expect(try tables(path) == ["app_users"])
    }

    // Failed before: `sagas list`, which only looks, switched the file to WAL, then advised to "start the
    // endpoint (which upgrades it)", which would have put the store's tables in it.
    @Test func sagasRefusesAnotherApplicationsDatabaseAndLeavesItAlone() throws {
        let path = try foreignDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try SagaDatabase.open(path)
            Issue.record("another application's database was opened")
        } catch let error as CLIError {
            #expect(error.description.contains("tables of another application (app_users)"), "\(error)")
            #expect(!error.description.contains("start the endpoint"), "\(error)")
        }
        #expect(try journalFormat(path) == 1)
        #expect(try tables(path) == ["app_users"])
    }
}
#endif
