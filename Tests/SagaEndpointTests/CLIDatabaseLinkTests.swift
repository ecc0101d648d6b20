// `--database` naming something SQLite cannot keep a database in, or a symbolic link: the preflight must
// say so before the endpoint connects. Compiled only with SAGA_ENDPOINT_CLI_TESTS (see CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import Foundation
import Logging
@testable import saga_endpoint
import Testing

@Suite struct CLIDatabaseLinkTests {
    func preflightError(_ path: String) -> String? {
        do {
            try DatabasePreflight.check(path, endpoint: "transfers", logger: Logger(label: "test"))
            return nil
        } catch {
            return "\(error)"
        }
    }

    // A review: a device or a FIFO passed the preflight (it "exists" and is writable, and reads as an empty
    // database), and `run` then stopped with SQLite's bare "disk I/O error [sql: PRAGMA journal_mode = WAL]".
    @Test func aDeviceIsRefusedNamingIt() {
        let error = preflightError("/dev/null")
        #expect(error?.contains("cannot use the database /dev/null: it is not a regular file") == true, "\(error ?? "accepted")")
    }

    // A review: SQLite follows a symbolic link and keeps the -wal and -shm beside the file it points to, but
    // the preflight looked at the link's folder: a link to a file in a folder that does not exist passed,
    // and `run` stopped with "SQLiteError(cantOpen…): unable to open database file".
    @Test func aLinkIntoAMissingFolderIsRefusedNamingTheTarget() throws {
        let link = FileManager.default.temporaryDirectory.appendingPathComponent("link-\(UUID().uuidString).sqlite").path
        let target = "/nonexistent-\(UUID().uuidString)/saga.sqlite"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        defer { try? FileManager.default.removeItem(atPath: link) }
        let error = preflightError(link)
        #expect(error?.contains("is a symbolic link to \(target)") == true, "\(error ?? "accepted")")
        #expect(error?.contains("does not exist") == true, "\(error ?? "accepted")")
    }

    @Test func aLinkToANewFileInAWritableFolderIsAccepted() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("links-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let link = folder.appendingPathComponent("link.sqlite").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "real.sqlite")
        #expect(preflightError(link) == nil)
    }
}
#endif
