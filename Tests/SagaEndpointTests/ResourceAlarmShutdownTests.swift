import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
import SagaEndpoint
import Sagas
import Testing

/// A broker in a memory alarm blocks the endpoint's publishing connection: a batch's confirms do not come
/// until the alarm clears. Found by an operator's review: SIGTERM then never ended the process (10
/// minutes), because cancelling the endpoint (the service group does when the grace period ends) did not
/// reach the batch waiting for its confirms. Its own node: the alarm would stall every other test.
@Suite("Stopping the endpoint during a resource alarm", .timeLimit(.minutes(3)))
struct ResourceAlarmShutdownTests {
    @Test("cancelled while its confirms are held back, the endpoint stops and the message stays in its queue")
    func stopsWhileBlocked() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        let admin = try await AMQPConnection.connect(url: node.url, connectionName: "alarm-admin")
        for queue in [LedgerSaga.queue, LedgerSaga.outQueue] {
            try await admin.declareQueue(QueueDeclaration(name: queue))
        }
        try await admin.publish(.toQueue(LedgerSaga.queue, AMQPMessage(
            body: try MessageCoding.encode(LedgerSaga.Open(ledgerId: "l-1", fail: false)),
            properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent,
                                        messageId: "open-1", type: LedgerSaga.Open.messageType))))
        // Blocks publishing connections from their next publish on: the endpoint's, not the admin's.
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.0000001"]) }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alarm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var registry = HandlerRegistry()
        registry.register(LedgerSaga.self)
        let database = directory.appendingPathComponent("ledgers.sqlite").path
        let logs = LogCapture()
        let logger = logs.logger(label: "alarm")
        let metrics = TestMetrics()
        let endpoint = SagaEndpoint(
            configuration: EndpointConfiguration(amqpURL: node.url, inputQueues: [LedgerSaga.queue], databasePath: database),
            registry: registry, logger: logger, metricsFactory: metrics)
        let stopped = Flag()
        let running = Task {
            defer { stopped.set() }
            try await endpoint.run()
        }
        try await logs.waitUntil(timeout: .seconds(30), message: "the endpoint's publishing connection to be blocked") {
            logs.tail().contains("blocked by the broker")
        }
        #expect(!stopped.isSet)
        // Operators see it: not ready, saying why, and a gauge.
        try await logs.waitUntil(timeout: .seconds(10), message: "not ready while blocked") {
            endpoint.notReadyReason?.contains("the broker blocks publishing") == true
        }
        #expect(try metrics.expectGauge("saga_broker_blocked").lastValue == 1)

        running.cancel()
        try await waitUntil(timeout: .seconds(20), message: "the endpoint to stop while the broker blocks it") {
            stopped.isSet
        }
        _ = await running.result
        // The alarm over, the message is still there: it was never acknowledged.
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.4"]) }
        try await waitUntil(timeout: .seconds(30)) { try await admin.checkQueue(LedgerSaga.queue).messageCount == 1 }
        await admin.close()
    }

    // Failed before: a batch whose outgoing messages add up to more than the socket's buffers kept the
    // publishing connection's thread in its write while the broker did not read; the cancellation could not
    // reach the batch and the endpoint did not stop until the alarm cleared.
    @Test("cancelled while a large batch is stuck in its write, the endpoint stops and the messages stay in their queue")
    func stopsWhileALargeBatchIsStuck() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        let admin = try await AMQPConnection.connect(url: node.url, connectionName: "alarm-admin")
        let (input, output) = ("alarm-pings", "alarm-pongs")
        for queue in [input, input + ".error", output] { try await admin.declareQueue(QueueDeclaration(name: queue)) }
        for index in 0..<30 {
            try await admin.publish(.toQueue(input, AMQPMessage(
                body: try MessageCoding.encode(Explode(note: "ping \(index)")),
                properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent,
                                            messageId: "ping-\(index)", type: Explode.messageType))))
        }
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.0000001"]) }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alarm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // 30 pongs of 900 KB in one batch: far more than a loopback socket holds while nobody reads.
        let pong = String(repeating: "x", count: 900_000)
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, context in try context.send(Explode(note: pong), to: output) }
        let endpoint = SagaEndpoint(
            configuration: EndpointConfiguration(amqpURL: node.url, inputQueues: [input],
                                                 databasePath: directory.appendingPathComponent("pings.sqlite").path),
            registry: registry, logger: Logger(label: "alarm-large"))
        let stopped = Flag()
        let running = Task {
            defer { stopped.set() }
            try await endpoint.run()
        }
        // The batch commits and starts writing its publishes; the broker stops reading at the first.
        try await Task.sleep(for: .seconds(4))
        #expect(!stopped.isSet)

        running.cancel()
        try await waitUntil(timeout: .seconds(20), message: "the endpoint to stop while its write is stuck") {
            stopped.isSet
        }
        _ = await running.result
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.4"]) }
        try await waitUntil(timeout: .seconds(30), message: "the pings back in their queue, unacknowledged") {
            try await admin.checkQueue(input).messageCount == 30
        }
        await admin.close()
    }
}
