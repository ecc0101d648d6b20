import Foundation
import Testing
@testable import SagaStore

@Suite("Write transactions on a database opened through another path")
struct DatabasePathTests {
    // Failed before: SQLite resolves a symbolic link to the database file and keeps its -wal and -shm
    // beside the file the link points to, while the check for a moved -wal/-shm looked beside the link:
    // every write transaction was refused as `movedDatabaseFile`, so an endpoint started with
    // `--database` naming a link requeued every message for ever.
    @Test("a database opened through a symbolic link can be written")
    func symbolicLinkToTheDatabase() throws {
        let database = TemporaryDatabase()
        let link = database.path + "-link.sqlite"
        defer {
            database.remove()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: link + suffix) }
        }
        // The real file exists first, as a deployment's volume would hold it.
        try openConnection(database).close()
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: database.path)

        let connection = try SQLiteConnection(path: link, logger: quietLogger)
        defer { connection.close() }
        try connection.transaction { try connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)") }
        try connection.transaction { try connection.run("INSERT INTO t (id) VALUES (1)") }
        #expect(connection.movedDatabaseFile() == nil)
    }
}
