import Foundation
import SagaStore
import Testing
@testable import SagaEndpoint

/// The poller reads due rows before their batch runs. If the saga completes in between (which cancels
/// its timeouts) and a new instance starts under the same correlation id, the old instance's timeout
/// must not reach the new one. No broker: the StoreWorker on its own, with and without handlers ahead.
@Suite("A due row withdrawn before its turn")
struct WithdrawnTimeoutTests {
    typealias Fixture = HandlersAheadTests.Fixture

    /// Places `order` with a reminder due at once and returns that reminder as the poller hands it on.
    private func placeWithDueReminder(_ fixture: Fixture, order: String) async throws -> WorkItem {
        let placed = try HandlersAheadTests.item("placed-\(order)", OrderSaga.Placed(orderId: order, remindAfterMs: 0))
        _ = await fixture.worker.processBatch([placed], now: Date())
        let rows = try SagaStore(path: fixture.path).dueTimeouts(at: Date().addingTimeInterval(1))
        let row = try #require(rows.first)
        return WorkItem(incoming: MessageTranslation.incoming(row), timeoutRow: row.key)
    }

    /// Completes `order` and starts a new instance under the same id, in one batch.
    private func closeAndReopen(_ fixture: Fixture, order: String) async throws {
        let results = await fixture.worker.processBatch([
            try HandlersAheadTests.item("close-\(order)", OrderSaga.Close(orderId: order)),
            try HandlersAheadTests.item("reopen-\(order)", OrderSaga.Placed(orderId: order, remindAfterMs: nil)),
        ], now: Date())
        #expect(results.allSatisfy { if case .processed = $0 { true } else { false } })
    }

    // Failed before: the reminder was handled by the new instance (reminders == 1, one ReminderSent).
    @Test("a timeout of a completed saga does not reach a new instance with the same id")
    func inTransaction() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        let reminder = try await placeWithDueReminder(fixture, order: "o1")
        try await closeAndReopen(fixture, order: "o1")

        let results = await fixture.worker.processBatch([reminder], now: Date())
        #expect(results.count == 1)
        if case .withdrawn = results[0] {} else { Issue.record("expected .withdrawn, got \(results)") }
        #expect(try fixture.order("o1")?.reminders == 0)
    }

    @Test("the same when the handlers ran ahead, against the new instance")
    func handlersAhead() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        let reminder = try await placeWithDueReminder(fixture, order: "o1")
        try await closeAndReopen(fixture, order: "o1")

        let items = await fixture.ahead.run([reminder], now: Date()).items
        #expect(items.first?.speculation != nil)
        let results = await fixture.worker.processBatch(items, now: Date())
        if case .withdrawn = results.first {} else { Issue.record("expected .withdrawn, got \(results)") }
        #expect(try fixture.order("o1")?.reminders == 0)
    }

    @Test("a due row that is still there is handled once, and a second copy of it is withdrawn")
    func stillThere() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        let reminder = try await placeWithDueReminder(fixture, order: "o1")
        let results = await fixture.worker.processBatch([reminder, reminder], now: Date())
        if case .processed = results.first {} else { Issue.record("expected .processed first, got \(results)") }
        if case .withdrawn = results.last {} else { Issue.record("expected .withdrawn second, got \(results)") }
        #expect(try fixture.order("o1")?.reminders == 1)
        #expect(try SagaStore(path: fixture.path).dueTimeouts(at: Date().addingTimeInterval(1)).isEmpty)
    }

    // Failed before: the delayed retry of a timeout whose handler threw re-inserted the row although its
    // saga had completed in the same batch (which deletes its timeouts): a cancelled timeout came back.
    @Test("a failed timeout is not parked again when its saga completed meanwhile")
    func notParkedAgain() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        _ = try await placeWithDueReminder(fixture, order: "o1")
        let row = try #require(try SagaStore(path: fixture.path).dueTimeouts(at: Date().addingTimeInterval(1)).first)
        _ = await fixture.worker.processBatch([try HandlersAheadTests.item("close-o1", OrderSaga.Close(orderId: "o1"))],
                                              now: Date())
        // What the pipeline hands the store for a due row to retry later (see `BatchPipeline.deferral`).
        var later = row
        later.dueAt = Date().addingTimeInterval(60)
        var retry = WorkItem(incoming: MessageTranslation.incoming(row), timeoutRow: row.key)
        retry.deferral = later

        let results = await fixture.worker.processBatch([retry], now: Date())
        if case .withdrawn = results.first {} else { Issue.record("expected .withdrawn, got \(results)") }
        #expect(try SagaStore(path: fixture.path).timeoutCount() == 0)
    }
}
