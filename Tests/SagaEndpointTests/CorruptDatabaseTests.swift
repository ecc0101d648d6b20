import AMQPTransport
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
        try await Self.corruptInbox(harness.databasePath("corrupt"))

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

    // Failed before: the stateless handlers' inbox check ignored read errors ("not in the inbox"), so a
    // message whose inbox could not be read called its integration, though it may have been handled before.
    @Test("an inbox that cannot be read runs no stateless handler: the message is requeued")
    func unreadableInboxRunsNoStatelessHandler() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("pings")
        try await Self.corrupt("sqlite_autoindex_inbox_1", in: harness.databasePath("pings"))
        let capture = LogCapture()
        let metrics = TestMetrics()
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in calls.increment() }
        let endpoint = harness.makeEndpoint(registry, queues: ["pings"], database: "pings", metrics: metrics,
                                            logger: capture.logger(label: "pings")) {
            $0.immediateRetries = 0
            $0.delayedRetries = []
        }
        let running = Task { try await endpoint.run() }
        try await harness.send(Explode(note: "ping"), to: "pings", messageId: "ping-1")
        try? await waitUntil(timeout: .seconds(10)) {
            let errorQueued = try await harness.depth("pings.error")
            return calls.count > 0 || errorQueued > 0
                || ((try? metrics.expectCounter("saga_messages_retried_total"))?.totalValue ?? 0) >= 2
        }
        #expect(calls.count == 0, "the handler ran though the inbox could not be read")
        #expect(try await harness.depth("pings.error") == 0, "moved to the error queue: \(capture.tail(20))")
        #expect(capture.tail().contains("database cannot be written"), "no error logged: \(capture.tail(20))")
        await harness.stop(running)
        try? await waitUntil(timeout: .seconds(10)) { try await harness.depth("pings") == 1 }
        #expect(try await harness.depth("pings") == 1, "the message is back in its queue")
        await harness.tearDown()
    }

    // Failed before: the poller logged a warning at every poll (every 200 ms by default) for as long as the
    // due timeouts could not be read.
    @Test("due timeouts and backlogs that cannot be read are logged once at warning level, not at every poll")
    func unreadableTimeoutsAreNotALogFlood() async throws {
        let harness = try await EndpointHarness.make()
        try await Self.corrupt("timeouts_by_due_at", in: harness.databasePath("timeouts"))
        let capture = LogCapture()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "timeouts",
                                            logger: capture.logger(label: "timeouts")) {
            $0.timeoutPollInterval = .milliseconds(50)
        }
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        try await Task.sleep(for: .seconds(2))
        let warnings = capture.tail(5000).components(separatedBy: "could not read due timeouts").count - 1
        #expect(warnings == 1, "\(warnings) warnings in 2 s: \(capture.tail(5))")
        // The backlog gauges count the timeouts through the same index: said once at warning level (it
        // was logged at debug only, so the gauges stopped moving without a word).
        let backlogWarnings = capture.tail(5000).split(separator: "\n")
            .filter { $0.contains("warning") && $0.contains("could not read the outbox and timeout backlogs") }.count
        #expect(backlogWarnings == 1, "\(capture.tail(10))")
        await harness.stop(running)
        await harness.tearDown()
    }

    // Failed before: the delivery count of a redelivered message is committed before it is processed (so
    // that a crash counts), and a transient failure rolled back only the processing. Every requeue for a
    // busy, full or corrupt database (or a version conflict) counted as a delivery, so a message that met
    // `maxDeliveries` (10) of them went to the error queue as a PoisonMessage.
    @Test("transient requeues do not count toward the poison limit")
    func transientRequeuesAreNotPoison() async throws {
        let harness = try await EndpointHarness.make()
        try await Self.corruptInbox(harness.databasePath("requeued"))
        let capture = LogCapture()
        let metrics = TestMetrics()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "requeued", metrics: metrics,
                                            logger: capture.logger(label: "requeued")) { $0.maxDeliveries = 2 }
        let running = Task { try await endpoint.run() }
        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "only")
        try? await waitUntil(timeout: .seconds(15)) {
            let errorQueued = try await harness.depth("counters.error")
            return errorQueued > 0 || ((try? metrics.expectCounter("saga_messages_retried_total"))?.totalValue ?? 0) >= 6
        }
        #expect(try await harness.depth("counters.error") == 0, "moved to the error queue: \(capture.tail(20))")
        #expect(((try? metrics.expectCounter("saga_messages_rejected_total"))?.totalValue ?? 0) == 0)
        await harness.stop(running)
        await harness.tearDown()
    }

    // Failed before: a quorum queue counts deliveries itself (`x-delivery-count`), requeues included, so
    // there too every transient requeue counted toward the poison limit.
    @Test("transient requeues from a quorum queue do not count toward the poison limit")
    func transientRequeuesFromAQuorumQueueAreNotPoison() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareQueue(.quorum("quorum-counters"))
        try await harness.connection.declareQueue(QueueDeclaration(name: "quorum-counters.error"))
        try await Self.corruptInbox(harness.databasePath("quorum"))
        let capture = LogCapture()
        let metrics = TestMetrics()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let endpoint = harness.makeEndpoint(registry, queues: ["quorum-counters"], database: "quorum", metrics: metrics,
                                            logger: capture.logger(label: "quorum")) { $0.maxDeliveries = 2 }
        let running = Task { try await endpoint.run() }
        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "quorum-counters", messageId: "only")
        try? await waitUntil(timeout: .seconds(15)) {
            let errorQueued = try await harness.depth("quorum-counters.error")
            return errorQueued > 0 || ((try? metrics.expectCounter("saga_messages_retried_total"))?.totalValue ?? 0) >= 6
        }
        #expect(try await harness.depth("quorum-counters.error") == 0, "moved to the error queue: \(capture.tail(20))")
        #expect(((try? metrics.expectCounter("saga_messages_rejected_total"))?.totalValue ?? 0) == 0)
        await harness.stop(running)
        await harness.tearDown()
    }

    /// Creates a store with the current schema at `path` whose inbox table's root page is garbage: the
    /// header and the schema read fine, a message's inbox row does not; the other tables are intact.
    static func corruptInbox(_ path: String) async throws {
        try await corrupt("inbox", in: path)
    }

    /// Overwrites the root page of table or index `name` with garbage.
    static func corrupt(_ name: String, in path: String) async throws {
        let inboxPage = try await runOnThread {
            let store = try SagaStore(path: path)
            defer { store.close() }
            let page = try store.connection.query("SELECT rootpage FROM sqlite_master WHERE name = ?",
                                                  [.text(name)]).first?[0].integerValue
            let pageSize = try store.connection.query("PRAGMA page_size").first?[0].integerValue
            return (try #require(page), try #require(pageSize))
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64((inboxPage.0 - 1) * inboxPage.1))
        try handle.write(contentsOf: Data(repeating: 0xA5, count: Int(inboxPage.1)))
        try handle.close()
    }
}
