import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// A delivery kept in the process to be processed again (`HeldDeliveries`) belongs to the channel it came
/// on. Once that connection is lost, the broker requeues it and delivers it again on the recovered one: the
/// held copy must be dropped, not processed a second time (its ack would fail, and it would use up the
/// excuse that keeps the broker's redelivery from being counted as a crash).
@Suite("A held delivery whose connection is lost", .timeLimit(.minutes(3)))
struct HeldDeliveryConnectionLossTests {
    @Test("is dropped; the broker's redelivery is processed once, and not counted as a crash")
    func droppedAfterConnectionLoss() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("held")
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        _ = try await harness.rowCount("held", "sagas")  // the file and schema, for the lock below
        let log = LogCapture()
        let name = TestBroker.uniqueName("held")
        let endpoint = harness.makeEndpoint(registry, queues: ["held"], database: "held", metrics: metrics,
                                            logger: log.logger(label: "endpoint")) {
            $0.connectionName = name
            $0.databaseBusyTimeout = .milliseconds(200)
            // Any redelivery counted as a possible crash would divert the message as a PoisonMessage.
            $0.maxDeliveries = 1
        }
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        let lock = harness.holdWriteLock(on: "held", atMost: 90)
        func retried() -> Int { Int((try? metrics.expectCounter("saga_messages_retried_total"))?.totalValue ?? 0) }
        try await Task.sleep(for: .milliseconds(200))
        try await harness.send(CounterSaga.Increment(counterId: "c-held"), to: "held", messageId: "held-1")
        try await waitUntil(timeout: .seconds(20), message: "a few rounds in process") { retried() >= 3 }

        let closed = try await runOnThread { try TestBroker.closeConnections(named: name + "-consume") }
        #expect(closed == 1)
        let before = retried()
        // The broker's redelivery on the recovered connection goes round in its turn.
        try await waitUntil(timeout: .seconds(30), message: "rounds after the recovery") { retried() >= before + 3 }
        try await lock.release()

        try await log.waitUntil(timeout: .seconds(30), message: "the increment processed once the lock is gone") {
            (try? await harness.state(CounterSaga.self, "c-held", in: "held"))?.count == 1
        }
        try await waitUntil(timeout: .seconds(30), message: "the delivery acknowledged") {
            try await harness.depth("held") == 0
        }
        #expect(!log.log.lines.contains { $0.contains("ack not possible") }, "a held copy processed after the loss")
        #expect(try await harness.depth("held.error") == 0, "diverted: \(log.tail())")
        await harness.stop(running)
        #expect(try await harness.depth("held") == 0)
        #expect(try await harness.state(CounterSaga.self, "c-held", in: "held")?.count == 1)
        await harness.tearDown()
    }
}
