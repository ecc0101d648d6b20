import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MoneyTransfer
@testable import SagaEndpoint
import Sagas
import Testing

// Two properties of the original message that the error-queue copy must not carry as they are:
//
// - `user_id`: RabbitMQ checks it against the publishing connection's user and closes the channel
//   (406 PRECONDITION_FAILED) when they differ. A producer with a user of its own that set it made a
//   message the endpoint could never error-queue: the copy was refused, the delivery came back, for ever.
//   And `errors replay` (run as yet another user) stopped at such a copy.
// - `expiration`: a per-message TTL applies in every queue the message reaches, so the error-queue copy
//   of an expiring message vanished from the error queue once its TTL ran out.
@Suite("Error queue: copies of messages with user_id or expiration", .timeLimit(.minutes(6)))
struct ErrorCopyPropertiesTests {
    /// A node of its own: it gets a second user, which the shared node must not.
    private func nodeWithProducer() async throws -> DedicatedBrokerNode {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        do {
            _ = try await runOnThread {
                try node.rabbitmqctl(["add_user", "producer", "producer-secret"])
                return try node.rabbitmqctl(["set_permissions", "-p", "/", "producer", ".*", ".*", ".*"])
            }
        } catch {
            node.shutdown()
            throw error
        }
        return node
    }

    private func producerURL(_ node: DedicatedBrokerNode) -> String {
        "amqp://producer:producer-secret@127.0.0.1:\(node.port)/"
    }

    // One node for both halves: booting one is the slow part.
    @Test("a message sent with another user's user_id reaches the error queue, and replays as any user")
    func userIdOfAnotherUser() async throws {
        let node = try await nodeWithProducer()
        defer { node.shutdown() }
        let admin = try await AMQPConnection.connect(url: node.url, connectionName: "user-id-admin")
        for queue in ["orders", "orders.error"] { try await admin.declareQueue(QueueDeclaration(name: queue)) }
        let producer = try await AMQPConnection.connect(url: producerURL(node), connectionName: "user-id-producer")
        try await producer.publish(.toQueue("orders", AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: "u-1", type: "NobodyHandlesThis",
            userId: "producer"))))

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("user-id-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var quiet = Logger(label: "user-id")
        quiet.logLevel = .critical
        let endpoint = SagaEndpoint(
            configuration: EndpointConfiguration(amqpURL: node.url, inputQueues: ["orders"],
                                                 databasePath: directory.appendingPathComponent("s.sqlite").path),
            registry: MoneyTransferApp.registry(), logger: quiet)
        let running = Task { try await endpoint.run() }

        // Before: the copy was refused (user_id 'producer' but authenticated user 'guest') and the message
        // came round for ever; the error queue stayed empty.
        try await waitUntil(timeout: .seconds(30)) { try await admin.checkQueue("orders.error").messageCount == 1 }
        running.cancel()
        _ = await running.result
        let errors = ErrorQueueAdmin(connection: admin, errorQueue: "orders.error")
        let entry = try #require(try await errors.show(messageId: "u-1"))
        #expect(entry.properties.userId == nil)
        #expect(entry.properties.headers?["x-original-user-id"] == "producer")
        #expect(entry.errorType == "NoHandler")

        // A copy as the endpoint made them before (user_id kept), parked by the producer's user: replayed by
        // another user, it stopped the whole run (406, the channel closed).
        try await producer.publish(.toQueue("orders.error", AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", headers: ["x-original-queue": "orders", "x-error-reason": "parked"],
            deliveryMode: .persistent, messageId: "old-1", type: "NobodyHandlesThis", userId: "producer"))))
        await producer.close()
        try await waitUntil(timeout: .seconds(20)) { try await admin.checkQueue("orders.error").messageCount == 2 }

        let outcome = try await errors.replayAll()

        #expect(outcome.replayed == 2 && outcome.skipped.isEmpty)
        try await waitUntil(timeout: .seconds(20)) { try await admin.checkQueue("orders").messageCount == 2 }
        #expect(try await admin.checkQueue("orders.error").messageCount == 0)
        await admin.close()
    }

    @Test("the error-queue copy of a message with an expiration does not expire in the error queue")
    func expiringMessageStaysInTheErrorQueue() async throws {
        let harness = try await EndpointHarness.make()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers"], database: "sagas")
        // Sent once the endpoint consumes: a delivered message no longer expires in `transfers` (a slow
        // start would let it expire there, before it could fail).
        try await waitUntil(timeout: .seconds(60)) { try await harness.connection.checkQueue("transfers").consumerCount >= 1 }
        try await harness.sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, expiration: "1500", messageId: "e-1",
            type: "NobodyHandlesThis"), to: "transfers")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 1 }
        await harness.stop(sagas)

        // Before: the copy kept `expiration: 1500` and was gone from the error queue 1.5 s later.
        try await Task.sleep(for: .seconds(3))
        #expect(try await harness.depth("transfers.error") == 1)
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")
        let entry = try #require(try await admin.show(messageId: "e-1"))
        #expect(entry.properties.expiration == nil)
        #expect(entry.properties.headers?["x-original-expiration"] == "1500")

        // Replayed, it goes back without the expiration (the operator wants it processed now) and
        // without the note.
        #expect(try await admin.replay(messageId: "e-1"))
        let replayed = try #require(try await harness.receive(from: "transfers", count: 1).first)
        #expect(replayed.properties.expiration == nil)
        #expect(replayed.properties.headers?["x-original-expiration"] == nil)
        await harness.tearDown()
    }
}
