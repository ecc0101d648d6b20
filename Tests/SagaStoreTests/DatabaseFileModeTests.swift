import Foundation
import Testing
@testable import SagaStore

/// The database holds the sagas' state and the messages in the outbox and timeouts (account names, amounts,
/// reply addresses): SQLite created a new file with 0644 under the usual umask, so every local user could
/// read it, and its -wal and -shm (which take the database file's mode) with it. A new file is now created
/// for its owner only; an existing file keeps the mode it has (an operator's choice, e.g. group-readable for
/// a backup user), and so do its -wal and -shm.
@Suite("Permissions of the database files")
struct DatabaseFileModeTests {
    static func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test("a new database, its -wal and its -shm are readable and writable by their owner only")
    func newDatabaseIsPrivate() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try SagaStore(path: database.path, logger: quietLogger)
        defer { store.close() }
        // A commit, so that the -wal and -shm exist while the store is open.
        try store.claimAndIgnore()
        for suffix in ["", "-wal", "-shm"] {
            let mode = try Self.mode(database.path + suffix)
            #expect(mode == 0o600, "\(suffix.isEmpty ? "database" : suffix): \(String(mode, radix: 8))")
        }
    }

    // A symbolic link to a file not created yet: `O_EXCL` does not follow the link, so SQLite created the
    // file it points to with 0644.
    @Test("a new database behind a symbolic link is private too")
    func newDatabaseBehindALinkIsPrivate() throws {
        let database = TemporaryDatabase()
        let link = database.path + "-link.sqlite"
        defer {
            database.remove()
            try? FileManager.default.removeItem(atPath: link)
        }
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: database.path)
        let store = try SagaStore(path: link, logger: quietLogger)
        defer { store.close() }
        try store.claimAndIgnore()
        for suffix in ["", "-wal", "-shm"] {
            let mode = try Self.mode(database.path + suffix)
            #expect(mode == 0o600, "\(suffix.isEmpty ? "database" : suffix): \(String(mode, radix: 8))")
        }
    }

    @Test("an existing database keeps its mode, and its -wal and -shm get the same")
    func existingDatabaseKeepsItsMode() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        #expect(FileManager.default.createFile(atPath: database.path, contents: nil,
                                               attributes: [.posixPermissions: 0o640]))
        let store = try SagaStore(path: database.path, logger: quietLogger)
        defer { store.close() }
        try store.claimAndIgnore()
        for suffix in ["", "-wal", "-shm"] {
            let mode = try Self.mode(database.path + suffix)
            #expect(mode == 0o640, "\(suffix.isEmpty ? "database" : suffix): \(String(mode, radix: 8))")
        }
    }
}

private extension SagaStore {
    /// Any write transaction.
    func claimAndIgnore() throws { _ = try claim(forEndpoint: "mode-test") }
}
