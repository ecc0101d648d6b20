import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// SQLite reports a corrupt database (`SQLITE_CORRUPT`) while the endpoint runs.
@Suite("Corrupt database", .timeLimit(.minutes(3)))
struct CorruptDatabaseTests {
    // Failed before: SQLITE_CORRUPT counted as a handler failure, so after its retries every message went
    // to the error queue (`x-error-type: SQLiteError`) while nothing was wrong with it, and all of them had
    // to be replayed once the database was repaired.
    @Test("a corrupt database holds messages back (requeued, an error logged) instead of error-queueing them")
    func corruptDatabaseRequeues() async throws {
        let harness = try await EndpointHarness.make()
        let path = harness.databasePath("corrupt")
        // A store with the current schema whose inbox table's root page is garbage: the header and the
        // schema read fine, the first message's inbox row does not.
        let inboxPage = try await runOnThread {
            let store = try SagaStore(path: path)
            defer { store.close() }
            let page = try store.connection.query("SELECT rootpage FROM sqlite_master WHERE name = 'inbox'").first?[0].integerValue
            let pageSize = try store.connection.query("PRAGMA page_size").first?[0].integerValue
            return (try #require(page), try #require(pageSize))
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64((inboxPage.0 - 1) * inboxPage.1))
        try handle.write(contentsOf: Data(repeating: 0xA5, count: Int(inboxPage.1)))
        try handle.close()

        let capture = LogCapture()
        let metrics = TestMetrics()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "corrupt", metrics: metrics,
                                            logger: capture.logger(label: "corrupt")) {
            // A handler failure would go to the error queue at once.
            $0.immediateRetries = 0
            $0.delayedRetries = []
        }
        let running = Task { try await endpoint.run() }
        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "only")
        try? await waitUntil(timeout: .seconds(10)) {
            let errorQueued = try await harness.depth("counters.error")
            return errorQueued > 0 || ((try? metrics.expectCounter("saga_messages_retried_total"))?.totalValue ?? 0) >= 2
        }
        #expect(try await harness.depth("counters.error") == 0, "moved to the error queue: \(capture.tail(20))")
        #expect(((try? metrics.expectCounter("saga_messages_failed_total"))?.totalValue ?? 0) == 0,
                "counted as a handler failure")
        #expect(capture.tail().contains("database cannot be written"), "no error logged: \(capture.tail(20))")
        await harness.stop(running)
        try? await waitUntil(timeout: .seconds(10)) { try await harness.depth("counters") == 1 }
        #expect(try await harness.depth("counters") == 1, "the message is back in its queue")
        await harness.tearDown()
    }
}
