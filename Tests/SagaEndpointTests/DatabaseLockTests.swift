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
    /// A counter endpoint on database "locked" (file and schema made first, so that a test can lock it),
    /// with a busy timeout of 200 ms (the lock limit: 600 ms), ready.
    static func startCounters() async throws
        -> (EndpointHarness, SagaEndpoint, Task<Void, any Error>, TestMetrics, LogCapture)
    {
        let harness = try await EndpointHarness.make()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        _ = try await harness.rowCount("locked", "sagas")
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "locked", metrics: metrics,
                                            logger: log.logger(label: "endpoint")) {
            $0.databaseBusyTimeout = .milliseconds(200)
        }
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }
        return (harness, endpoint, running, metrics, log)
    }

    // Found by an operations review: with a write lock held for 40 s every message was requeued, while
    // /health/ready stayed 200, `saga_database_unavailable` 0, and the log (at notice) said nothing.
    @Test("not ready and the gauge at 1 after three busy timeouts, naming the lock; ready again once it is released")
    func longLockMakesTheEndpointNotReady() async throws {
        let (harness, endpoint, running, metrics, log) = try await Self.startCounters()

        let lock = harness.holdWriteLock(on: "locked", atMost: 60)
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

        try await lock.release()
        try await log.waitUntil(timeout: .seconds(30), message: "ready again once the lock is released") { endpoint.isReady }
        try await waitUntil(timeout: .seconds(15)) {
            try await harness.state(CounterSaga.self, "c-locked", in: "locked")?.count == 5
        }
        #expect(try metrics.expectGauge("saga_database_unavailable").lastValue == 0)
        await harness.stop(running)
        await harness.tearDown()
    }

    // A review of this change: the watch kept the first lock failure's time until a batch wrote rows. A
    // failure followed by none (a duplicate, a discarded reply, no traffic; with two processes on one file,
    // the requeued message taken by the other) left it set, and the next single busy timeout, any time
    // later, was taken for a lock held all that time: not ready and the gauge at 1 after one busy timeout.
    @Test("one busy timeout long after an earlier one does not make the endpoint not ready")
    func staleLockStart() async throws {
        let (harness, endpoint, running, metrics, _) = try await Self.startCounters()
        try await harness.send(CounterSaga.Increment(counterId: "c"), to: "counters", messageId: "first")
        try await waitUntil(timeout: .seconds(15)) { try await harness.state(CounterSaga.self, "c", in: "locked")?.count == 1 }

        // Holds the write lock for `hold`, as another process's transaction of that length would.
        func lock(for hold: Duration) async throws {
            let seconds = Double(hold.components.seconds) + Double(hold.components.attoseconds) / 1e18
            try await harness.withStore("locked") { store in
                try store.transaction { _ in Thread.sleep(forTimeInterval: seconds) }
            }
        }
        let notReadySeen = Mutex<[String]>([])
        let watcher = Task {
            while !Task.isCancelled {
                if let reason = endpoint.notReadyReason { notReadySeen.withLock { $0.append(reason) } }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        // 1. A copy of "first" (a client's retry) while another connection holds the lock 350 ms: one or two
        //    busy timeouts (well below three), then it is a duplicate, which writes nothing.
        let held = Task { try await lock(for: .milliseconds(350)) }
        try await Task.sleep(for: .milliseconds(30))
        try await harness.send(CounterSaga.Increment(counterId: "c"), to: "counters", messageId: "first")
        try await held.value
        try await Task.sleep(for: .seconds(1))
        #expect(notReadySeen.withLock { $0.isEmpty }, "not ready after a 350 ms lock")
        // 2. Idle a while, then the same short lock and a new message.
        try await Task.sleep(for: .seconds(3))
        let again = Task { try await lock(for: .milliseconds(350)) }
        try await Task.sleep(for: .milliseconds(30))
        try await harness.send(CounterSaga.Increment(counterId: "c"), to: "counters", messageId: "second")
        try await again.value
        try await waitUntil(timeout: .seconds(15)) { try await harness.state(CounterSaga.self, "c", in: "locked")?.count == 2 }
        watcher.cancel()
        let seen = notReadySeen.withLock { Array(Set($0)) }
        let gauge = try metrics.expectGauge("saga_database_unavailable").values
        #expect(seen.isEmpty, "not ready after a 350 ms lock: \(seen)")
        #expect(!gauge.contains(1), "saga_database_unavailable went to 1: \(gauge)")
        await harness.stop(running)
        await harness.tearDown()
    }
}
