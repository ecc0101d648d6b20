import Foundation
import Logging
import SagaStore
import Testing
@testable import SagaEndpoint

/// A batch's confirmed outbox rows are marked dispatched by the next batch's transaction, or by themselves
/// after a short delay, and stay claimed (`publishing`) until then, so that nobody sends them again meanwhile.
@Suite("Dispatch marks ride with the next transaction")
struct DispatchMarksTests {
    /// Processes `LedgerSaga.Open` for `id` and returns its outbox rows (one).
    private func processed(_ id: String, by worker: StoreWorker) async throws -> [OutboxRecord] {
        guard case .processed(let outbox, _) = try #require(await worker.processBatch([try StoreWorkerFixture.open(id)],
                                                                                     now: Date()).first) else {
            Issue.record("not processed")
            return []
        }
        return outbox
    }

    /// `processed`, then its rows confirmed as the pipeline does after publishing (marks pending).
    private func confirmed(_ id: String, by worker: StoreWorker) async throws -> [OutboxRecord] {
        let rows = try await processed(id, by: worker)
        worker.markDispatchedWithNextCommit(rows.compactMap(\.key), releasing: rows.map(\.messageId))
        return rows
    }

    private func undispatched(_ path: String) throws -> [String] {
        let store = try SagaStore(path: path, logger: Logger(label: "test"))
        defer { store.close() }
        return try store.undispatchedOutbox(limit: 100).map(\.messageId)
    }

    /// Waits (up to 10 s) for the pending marks to be written without a batch, and their rows released.
    private func expectWrittenByThemselves(_ fixture: StoreWorkerFixture) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while try !undispatched(fixture.path).isEmpty || fixture.worker.publishing.count > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try undispatched(fixture.path).isEmpty)
        #expect(fixture.worker.publishing.count == 0)
    }

    @Test("confirmed rows are marked by the next batch's transaction, and stay claimed until it commits")
    func marksRideWithTheNextBatch() async throws {
        let fixture = try await StoreWorkerFixture(markFlushDelay: .seconds(3600))
        defer { fixture.remove() }
        let worker = fixture.worker
        let ids = try await confirmed("a", by: worker).map(\.messageId)
        #expect(ids.count == 1)
        // Not written yet, and still claimed: a duplicate or housekeeping leaves the rows alone.
        #expect(try undispatched(fixture.path) == ids)
        #expect(ids.allSatisfy(worker.publishing.contains))

        let second = try await processed("b", by: worker)
        #expect(try undispatched(fixture.path) == second.map(\.messageId))
        #expect(!ids.contains(where: worker.publishing.contains))
        #expect(worker.dispatchMarks.count == 0)
    }

    @Test("with no batch after them, the marks are written by themselves after the delay")
    func idleMarksAreWritten() async throws {
        let fixture = try await StoreWorkerFixture(markFlushDelay: .milliseconds(20))
        defer { fixture.remove() }
        let worker = fixture.worker
        _ = try await confirmed("a", by: worker)
        try await expectWrittenByThemselves(fixture)
    }

    @Test("closing the store writes the marks still pending")
    func closeWritesPendingMarks() async throws {
        let fixture = try await StoreWorkerFixture(markFlushDelay: .seconds(3600))
        defer { fixture.remove() }
        let worker = fixture.worker
        _ = try await confirmed("a", by: worker)
        await worker.close()
        #expect(try undispatched(fixture.path).isEmpty)
    }

    @Test("a transaction that does not commit keeps the marks for the next one")
    func failedTransactionKeepsTheMarks() async throws {
        let fixture = try await StoreWorkerFixture(busyTimeout: .milliseconds(50), markFlushDelay: .seconds(3600))
        defer { fixture.remove() }
        let worker = fixture.worker
        let ids = try await confirmed("a", by: worker).map(\.messageId)

        // Another connection holds the write lock: the next batch's transaction cannot begin.
        let other = try SagaStore(path: fixture.path, logger: Logger(label: "test"))
        try other.connection.run("BEGIN IMMEDIATE")
        let blocked = await worker.processBatch([try StoreWorkerFixture.open("b")], now: Date())
        guard case .failed = try #require(blocked.first) else {
            Issue.record("not failed: \(blocked)")
            return
        }
        try other.connection.run("ROLLBACK")
        other.close()
        #expect(worker.dispatchMarks.count == 1)
        #expect(ids.allSatisfy(worker.publishing.contains))

        let later = try await processed("c", by: worker)
        #expect(try undispatched(fixture.path) == later.map(\.messageId))
        #expect(!ids.contains(where: worker.publishing.contains))
    }
}
