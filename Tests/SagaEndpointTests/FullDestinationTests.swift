import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import Sagas
import Testing

/// An operator's `max-length` policy with `overflow: reject-publish` on a queue the endpoint sends to: the
/// broker nacks every command for it while it is full. Failed before: each incoming message with such a
/// command was held and handed back to the head of the input queue, again and again, so once `prefetch`
/// of them were in the endpoint, messages for every other queue waited behind them (here a message for
/// another queue was still not handled after 20 s) until the full queue had room. The command is
/// committed in the outbox, so the incoming delivery is now acknowledged and housekeeping sends the
/// command again, as for a command whose queue does not exist.
@Suite("A full destination queue does not stall the endpoint", .timeLimit(.minutes(3)))
struct FullDestinationTests {
    @Test("messages for other queues go on while one is full; its commands go out once it has room")
    func otherQueuesGoOn() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("senders")
        try await harness.connection.declareQueue(QueueDeclaration(name: "crowded"))
        try await harness.connection.declareQueue(QueueDeclaration(name: "quiet"))
        let vhost = harness.vhost
        try await harness.refusePublishes(to: "crowded", policy: "crowded-full")
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { message, context in
            try context.send(Explode(note: "on from \(message.note)"), to: message.note == "quiet" ? "quiet" : "crowded")
        }
        let metrics = TestMetrics()
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["senders"], database: "senders", metrics: metrics,
                                            logger: log.logger(label: "endpoint")) {
            $0.prefetch = 8
            $0.batchSize = 2
            $0.outboxRedispatchDelay = .seconds(1)
        }
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        for index in 0..<20 {
            try await harness.send(Explode(note: "c\(index)"), to: "senders", messageId: "crowded-\(index)")
        }
        try await harness.send(Explode(note: "quiet"), to: "senders", messageId: "quiet-1")

        let quiet = try await harness.receive(from: "quiet", count: 1, timeout: .seconds(20))
        #expect(quiet.count == 1, "the message for another queue waited behind the full one:\n\(log.tail(20))")
        try await log.waitUntil(timeout: .seconds(20), message: "every incoming message acknowledged") {
            try await harness.depth("senders") == 0
        }
        let warning = log.log.entries.first { $0.message.hasPrefix("outgoing messages refused by the broker") }
        #expect(warning?.metadata["routing_key"] == "crowded", "\(log.tail(20))")

        // Room again: housekeeping sends each command, under its id, and nothing is left undispatched.
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "crowded-full"]) }
        let commands = try await harness.receive(from: "crowded", count: 20, timeout: .seconds(30))
        #expect(Set(commands.compactMap(\.properties.messageId)).count == 20)
        try await log.waitUntil(timeout: .seconds(20), message: "the outbox dispatched") {
            try await harness.rowCount("senders", "outbox", where: "dispatched_at IS NULL") == 0
        }
        #expect(try await harness.rowCount("senders", "inbox") == 21, "each message processed once")
        await harness.stop(running)
        await harness.tearDown()
    }
}
