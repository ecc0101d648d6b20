import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import Synchronization
import TestSagaSupport
import Testing

/// Another process holding the database's write lock for long (a forgotten `sqlite3` session in a
/// transaction, a VACUUM against a live endpoint): nothing moves, and operators must be told.
@Suite("A database locked by another process for long", .timeLimit(.minutes(3)))
struct DatabaseLockTests {
    // Found by an operations review: with a write lock held for 40 s every message was requeued, while
    // /health/ready stayed 200, `saga_database_unavailable` 0, and the log (at notice) said nothing.
    @Test("not ready and the gauge at 1 after three busy timeouts, naming the lock; ready again once it is released")
    func longLockMakesTheEndpointNotReady() async throws {
        let harness = try await EndpointHarness.make()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        // Create the file and its schema before the lock is taken.
        _ = try await harness.rowCount("locked", "sagas")
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "locked", metrics: metrics,
                                            logger: log.logger(label: "endpoint")) {
            $0.databaseBusyTimeout = .milliseconds(200)
        }
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        let release = Atomic<Bool>(false)
        let locked = Task {
            try await harness.withStore("locked") { store in
                try store.transaction { _ in
                    let deadline = Date().addingTimeInterval(60)
                    while !release.load(ordering: .relaxed), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        for index in 0..<5 {
            try await harness.send(CounterSaga.Increment(counterId: "c-locked"), to: "counters", messageId: "locked-\(index)")
        }
        try await log.waitUntil(timeout: .seconds(30), message: "not ready while the lock is held") {
            endpoint.notReadyReason?.contains("write lock") == true
        }
        #expect(try metrics.expectGauge("saga_database_unavailable").lastValue == 1)
        let warnings = log.log.entries.filter { $0.level == .warning && $0.message.contains("transient failure") }
        #expect(!warnings.isEmpty && warnings.count < 5, "throttled: \(warnings.count) warnings")

        release.store(true, ordering: .relaxed)
        try await locked.value
        try await log.waitUntil(timeout: .seconds(30), message: "ready again once the lock is released") { endpoint.isReady }
        try await waitUntil(timeout: .seconds(15)) {
            try await harness.state(CounterSaga.self, "c-locked", in: "locked")?.count == 5
        }
        #expect(try metrics.expectGauge("saga_database_unavailable").lastValue == 0)
        await harness.stop(running)
        await harness.tearDown()
    }
}
