import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
@testable import SagaEndpoint
import Sagas
import ServiceLifecycle
import TestSagaSupport
import Testing

/// A graceful shutdown processes the deliveries that came before its consumers' cancel. It used to end the
/// batch loop's intake right after the cancels, while each consumer's forwarder could still be moving such
/// deliveries into it: one moved after the loop had drained and ended was never processed, and went back to
/// its queue only when the connection closed (a quorum queue counted it). Failed before (with the forwarding
/// stretched to 300 ms per delivery, messages sent while stopping: 3 of 6 processed, 3 back in the queue
/// with `x-delivery-count` 1). Now the intake ends when every forwarder has ended.
@Suite("A graceful shutdown and the deliveries before the cancel", .timeLimit(.minutes(3)))
struct ShutdownForwardingTests {
    @Test("deliveries that came before the consumers' cancel are processed, not left to the close")
    func forwardedBeforeTheIntakeEnds() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareQueue(QueueDeclaration(name: "qdrain", arguments: [
            "x-queue-type": .string("quorum")]))
        try await harness.connection.declareQueue(QueueDeclaration(name: "qdrain.error"))
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["qdrain"], database: "qdrain",
                                            logger: log.logger(label: "endpoint"))
        endpoint.consumerCancelDelay.set(.seconds(1))
        endpoint.forwardingDelayWhileStopping.set(.milliseconds(300))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: endpoint)], logger: log.logger(label: "group")))
        let running = Task { try await group.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        await group.triggerGracefulShutdown()
        // Stopping, its consumer not cancelled yet (for a second): these still come to this endpoint.
        for n in 1...6 {
            try await harness.send(CounterSaga.Increment(counterId: "c-drain"), to: "qdrain", messageId: "qdrain-\(n)")
        }
        try await running.value

        let state = try await harness.state(CounterSaga.self, "c-drain", in: "qdrain")
        #expect(state?.count == 6, "every delivery before the cancel processed: \(log.tail())")
        let left = try await harness.depth("qdrain")
        #expect(left == 0, "none left to the connection's close")
        if left > 0 {
            let back = try await harness.receive(from: "qdrain", count: left)
            let ids = back.map { "\($0.properties.messageId ?? "") (x-delivery-count \($0.intHeader("x-delivery-count") ?? 0))" }
            Issue.record("back in the queue: \(ids.joined(separator: ", "))")
        }
        await harness.tearDown()
    }
}
