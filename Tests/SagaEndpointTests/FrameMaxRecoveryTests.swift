import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import SagaEndpoint
import Sagas
import Testing

/// The broker comes back from a restart with a smaller `frame_max` (an operator changed rabbitmq.conf
/// meanwhile): the endpoint's connections negotiate it anew when they recover, and outgoing messages must be
/// checked against the new value, not the one of the first connection.
@Suite("Outgoing messages after a recovery onto a smaller frame_max", .timeLimit(.minutes(4)))
struct FrameMaxRecoveryTests {
    // Failed before: the endpoint read frame_max once, at start (128 KiB), so after the restart a message
    // whose headers fit that but not the new 16 KiB frame was stored in the outbox and then refused at every
    // publish (.invalidArgument); its incoming message never reached the error queue.
    @Test("a message too large for the new frame sends its incoming message to the error queue, naming the new frame_max")
    func smallerFrameMaxAfterRestart() async throws {
        var quiet = Logger(label: "frame-max-admin")
        quiet.logLevel = .error
        let node = try await runOnThread { try DedicatedBrokerNode.start(extraConfig: "frame_max = 131072") }
        defer { node.shutdown() }
        let admin = try await AMQPConnection.connect(
            url: node.url, connectionName: "frame-max-admin",
            recovery: RecoveryPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1)), logger: quiet)
        for queue in ["pings", "pings.error", "pongs", "pongs.error"] {
            try await admin.declareQueue(QueueDeclaration(name: queue))
        }
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { ping, context in
            // About 40 KB of headers: within the first frame_max (131072), over the new one (16384).
            _ = try context.send(Explode(note: "pong"), to: "pongs",
                                 headers: ["pad": String(repeating: "x", count: ping.note == "big" ? 40_000 : 10)])
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("frame-max-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = LogCapture()
        var configuration = EndpointConfiguration(amqpURL: node.url, inputQueues: ["pings"],
                                                  databasePath: directory.appendingPathComponent("s.sqlite").path)
        configuration.timeoutPollInterval = .milliseconds(50)
        let endpoint = SagaEndpoint(configuration: configuration, registry: registry, logger: log.logger(label: "frame-max"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(60), message: "ready after start") { endpoint.isReady }

        try await runOnThread {
            try node.stop()
            try node.reconfigure(extraConfig: "frame_max = 16384")
            try node.start()
        }
        try await log.waitUntil(timeout: .seconds(90), message: "ready again after the restart") {
            let frameMax = await admin.negotiatedFrameMax
            return endpoint.isReady && frameMax == 16384
        }

        try await admin.publish(.toQueue("pings", AMQPMessage(
            body: try MessageCoding.encode(Explode(note: "big")),
            properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent, messageId: "ping-big",
                                        type: Explode.messageType))))
        try await log.waitUntil(timeout: .seconds(30), message: "the incoming message in the error queue") {
            try await admin.checkQueue("pings.error").messageCount == 1
        }
        let errors = try await admin.consume(queue: "pings.error")
        var first: AMQPDelivery?
        for try await delivery in errors.deliveries {
            first = delivery
            break
        }
        let copy = try #require(first)
        #expect(copy.properties.messageId == "ping-big")
        #expect(copy.properties.headers?["x-error-type"]?.stringValue == "InvalidOutgoingMessage")
        let reason = copy.properties.headers?["x-error-reason"]?.stringValue ?? ""
        #expect(reason.contains("frame_max 16384"), "\(reason)")
        #expect(try await admin.checkQueue("pongs").messageCount == 0)
        running.cancel()
        _ = await running.result
        await admin.close()
    }
}
