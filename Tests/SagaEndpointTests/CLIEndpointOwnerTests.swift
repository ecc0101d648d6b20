// One database file, one endpoint: `run` and `bank` refuse the file of the other. Seen before the check:
// the bank started on the transfer endpoint's file took a TransferSaga's due timeout and moved it to
// `bank.error` as NoHandler, so the saga never got it. Compiled only with SAGA_ENDPOINT_CLI_TESTS (see
// CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import Foundation
import Logging
@testable import saga_endpoint
import SagaStore
import Testing

@Suite struct CLIEndpointOwnerTests {
    let logger = Logger(label: "test")

    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("owner-\(UUID().uuidString).sqlite").path
    }

    func owners(_ path: String) throws -> [String] {
        let connection = try SQLiteConnection(path: path)
        defer { connection.close() }
        return try connection.query("SELECT endpoint FROM store_owner").compactMap { $0[0].textValue }
    }

    @Test func anotherEndpointsStoreIsRefusedAndKeepsItsOwner() throws {
        let path = temporaryPath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        // A new file belongs to the first endpoint that starts on it.
        try DatabasePreflight.check(path, endpoint: "transfers", logger: logger)
        #expect(try owners(path) == ["transfers"])
        do {
            try DatabasePreflight.check(path, endpoint: "bank", logger: logger)
            Issue.record("the bank was let onto the transfer endpoint's database")
        } catch let error as CLIError {
            #expect(error.description.contains("store of endpoint 'transfers'"), "\(error)")
            #expect(error.description.contains("this is endpoint 'bank'"), "\(error)")
        }
        #expect(try owners(path) == ["transfers"])
        // Processes of one endpoint share its file (competing consumers).
        try DatabasePreflight.check(path, endpoint: "transfers", logger: logger)
        #expect(try owners(path) == ["transfers"])
    }

    // A store written before the record existed has no owner yet: the first endpoint to start claims it.
    @Test func anExistingStoreWithoutOwnerIsClaimed() throws {
        let path = temporaryPath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try SagaStore(path: path)
        store.close()
        try DatabasePreflight.check(path, endpoint: "bank", logger: logger)
        #expect(try owners(path) == ["bank"])
        #expect(throws: CLIError.self) { try DatabasePreflight.check(path, endpoint: "transfers", logger: self.logger) }
    }

    // Handing the file over, as the error says: its row deleted, the next endpoint claims it.
    @Test func aDeletedOwnerRowHandsTheFileOver() throws {
        let path = temporaryPath()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        try DatabasePreflight.check(path, endpoint: "transfers", logger: logger)
        let connection = try SQLiteConnection(path: path)
        try connection.execute("DELETE FROM store_owner")
        connection.close()
        try DatabasePreflight.check(path, endpoint: "transfers-v2", logger: logger)
        #expect(try owners(path) == ["transfers-v2"])
    }
}
#endif
