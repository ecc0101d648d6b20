import Foundation
import Testing
@testable import SagaStore

@Suite("Checkpoints on a thread of their own")
struct WALCheckpointerTests {
    /// Commits `count` transactions of one 4 KiB row each (at least one WAL page apiece).
    private func write(_ connection: SQLiteConnection, _ count: Int, from start: Int = 0) throws {
        for index in start..<(start + count) {
            try connection.run("INSERT INTO t (id, payload) VALUES (?, zeroblob(4000))", [.integer(Int64(index))])
        }
    }

    private func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("commits wake the checkpointer instead of checkpointing themselves, and the WAL starts over")
    func commitsWakeTheCheckpointer() async throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let writer = try openConnection(database, options: .init(walAutocheckpointPages: 0))
        try writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
        let checkpointer = try WALCheckpointer(path: database.path, synchronous: .full, logger: .init(label: "test"))
        writer.checkpointInBackground(checkpointer, after: 20, backstop: 1_000_000)

        for round in 0..<4 {
            let before = checkpointer.checkpointsRun
            try write(writer, 50, from: round * 50)
            try await waitUntil { checkpointer.checkpointsRun > before }
            #expect(checkpointer.checkpointsRun > before, "round \(round): the checkpointer ran")
        }
        // Everything was copied while the writer was idle: the next transaction starts the WAL over, so
        // it holds only what came since (200 pages were written in all).
        try await Task.sleep(for: .milliseconds(50))
        try write(writer, 1, from: 1_000)
        let wal = try writer.checkpointPassive()
        #expect(wal.walFrames < 60, "the WAL started over (\(wal.walFrames) frames)")
        #expect(checkpointer.backstopCheckpoints == 0)

        checkpointer.stop()
        writer.close()
        let reader = try openConnection(database)
        #expect(try reader.query("SELECT count(*) FROM t").first?[0] == .integer(201))
    }

    @Test("the writer checkpoints itself at the backstop when the checkpointer does not keep up")
    func backstop() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let writer = try openConnection(database, options: .init(walAutocheckpointPages: 0))
        try writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
        let checkpointer = try WALCheckpointer(path: database.path, synchronous: .full, logger: .init(label: "test"))
        // Stopped: it never runs, as if it were far behind.
        checkpointer.stop()
        writer.checkpointInBackground(checkpointer, after: 10, backstop: 50)
        try write(writer, 200)
        #expect(checkpointer.backstopCheckpoints > 0)
        #expect(checkpointer.checkpointsRun == 0)
        #expect(try writer.checkpointPassive().walFrames < 110, "the WAL stayed bounded")
        writer.close()
    }

    @Test("a checkpointer whose connection cannot be opened throws, naming the file")
    func openFailure() {
        let path = "/nonexistent-\(UUID().uuidString)/store.sqlite"
        let error = #expect(throws: SQLiteError.self) {
            _ = try WALCheckpointer(path: path, synchronous: .full, logger: .init(label: "test"))
        }
        #expect(error?.path == path)
    }
}
