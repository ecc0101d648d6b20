import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
@testable import SagaEndpoint
import Sagas
import ServiceLifecycle
import TestSagaSupport
import Testing

/// A graceful shutdown hands the deliveries kept in the process (`HeldDeliveries`) back to their queues. It
/// sets `stopping` first and then cancels the consumers. Failed before: a kept delivery processed again in
/// between was handed back at once, while its consumer was still active; the broker delivered it straight
/// back to this endpoint, which processed it (the database still locked), kept it and handed it back again,
/// round after round until the cancel landed, each round one more delivery counted by a quorum queue
/// (`x-delivery-count` 11 here, with the moment stretched to 2 s). Now they are handed back once the
/// consumers are cancelled: counted once.
@Suite("A graceful shutdown and the deliveries kept in the process", .timeLimit(.minutes(3)))
struct ShutdownHeldHandBackTests {
    @Test("a kept delivery is handed back once, after the consumers are cancelled")
    func handedBackOnceAfterTheCancel() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareQueue(QueueDeclaration(name: "qstop", arguments: [
            "x-queue-type": .string("quorum")]))
        try await harness.connection.declareQueue(QueueDeclaration(name: "qstop.error"))
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        _ = try await harness.rowCount("qstop", "sagas")  // the file and schema, for the lock below
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["qstop"], database: "qstop", metrics: metrics,
                                            logger: log.logger(label: "endpoint")) {
            $0.databaseBusyTimeout = .milliseconds(200)
        }
        endpoint.consumerCancelDelay.set(.seconds(2))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: endpoint)], logger: log.logger(label: "group")))
        let running = Task { try await group.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        let lock = harness.holdWriteLock(on: "qstop", atMost: 60)
        try await Task.sleep(for: .milliseconds(200))
        try await harness.send(CounterSaga.Increment(counterId: "c-stop"), to: "qstop", messageId: "qstop-1")
        try await log.waitUntil(timeout: .seconds(20), message: "kept for a few rounds") {
            (try? metrics.expectCounter("saga_messages_retried_total").totalValue) ?? 0 >= 2
        }

        await group.triggerGracefulShutdown()
        try await running.value
        try await lock.release()

        let back = try await harness.receive(from: "qstop", count: 1)
        #expect(back.map(\.properties.messageId) == ["qstop-1"], "\(log.tail())")
        #expect(back.first?.intHeader("x-delivery-count") == 1, "handed back once: \(back.first?.properties.headers ?? [:])")
        #expect(try await harness.state(CounterSaga.self, "c-stop", in: "qstop") == nil, "not processed meanwhile")
        await harness.tearDown()
    }
}
