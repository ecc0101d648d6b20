import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
import SagaStore
import Sagas
import Synchronization
import Testing
@testable import SagaEndpoint

/// Housekeeping purges the inbox, the outbox and the failure counts every `housekeepingInterval`. Which rows
/// are old is a wall-clock question (their dates are stored), but how long ago the last purge ran is a
/// duration this process measures: on the wall clock, a clock stepped back by an hour held every purge back
/// for that hour.
@Suite("Housekeeping purges across a wall-clock step", .timeLimit(.minutes(3)))
struct PurgeAcrossClockStepTests {
    /// The offset of the wall clock housekeeping reads, set by the test.
    final class ClockStep: Sendable {
        private let offset = Mutex<TimeInterval>(0)
        func set(_ seconds: TimeInterval) { offset.withLock { $0 = seconds } }
        func now() -> Date { Date(timeIntervalSinceNow: offset.withLock { $0 }) }
    }

    // Failed before: after the step back, the last purge looked an hour in the future, and no purge ran
    // until the clock had caught up: the expired inbox row stayed.
    @Test("a clock stepped back an hour does not hold back the next purge")
    func backwardStep() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("tidy")
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in }
        let path = harness.databasePath("tidy")
        let dispatcher = MessageDispatcher(registry: registry, endpointAddress: "tidy")
        let worker = try await StoreWorker.open(path: path, durable: true, dispatcher: dispatcher, logger: Logger(label: "tidy"))
        let reader = try await BacklogReader.open(path: path, busyTimeout: .seconds(5), logger: Logger(label: "tidy"))
        let publisher = try await AMQPConnection.connect(url: harness.url, connectionName: "tidy-housekeeping")
        let endpoint = harness.makeEndpoint(registry, queues: ["tidy"], database: "tidy") {
            $0.housekeepingInterval = .milliseconds(200)
            $0.deduplicationWindow = .seconds(60)
        }
        let clock = ClockStep()
        let housekeeping = Task {
            await endpoint.housekeeping(store: worker, backlogReader: reader, publisher: publisher,
                                        metrics: EndpointMetrics(factory: TestMetrics()), wallClock: clock.now)
        }
        // The first purge runs at once, on the clock as it was.
        try await Task.sleep(for: .milliseconds(500))
        clock.set(-3600)
        // Expired by the clock stepped back too: older than the window from there.
        _ = try await harness.withStore("tidy") {
            try $0.recordInboxIfAbsent(messageId: "old-1", queue: "tidy", at: Date(timeIntervalSinceNow: -3600 - 600))
        }
        var purged = true
        do {
            try await waitUntil(timeout: .seconds(5)) { try await harness.rowCount("tidy", "inbox") == 0 }
        } catch {
            purged = false
        }
        housekeeping.cancel()
        await housekeeping.value
        await publisher.close()
        await reader.close()
        await worker.close()
        await harness.tearDown()
        #expect(purged, "the expired inbox row was not purged within 5 s of the step")
    }
}
