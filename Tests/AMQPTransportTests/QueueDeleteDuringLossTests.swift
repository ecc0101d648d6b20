// A queue deleted through a connection that is lost (or down, a recovery under way) before the broker
// answers. Failed before: the queue stayed recorded, and recovery declared it again.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("A queue deleted while its connection is lost", .timeLimit(.minutes(2)))
struct QueueDeleteDuringLossTests {
    @Test("recovery deletes it rather than declare it again; one another connection consumes meanwhile stays")
    func deleteDuringLoss() async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        defer { _ = try? TestBroker.deleteVhost(vhost.name) }
        let name = TestBroker.uniqueName("amqp-test-delete-during-loss")
        // Recovery waits 5 s before it reconnects: the deletes fall in that gap.
        let connection = try await AMQPConnection.connect(
            url: vhost.url, connectionName: name,
            recovery: RecoveryPolicy(initialDelay: .seconds(5), maximumDelay: .seconds(5), jitter: 0), logger: quietLogger)
        let observer = try await AMQPConnection.connect(url: vhost.url, connectionName: TestBroker.uniqueName("amqp-test-observer"))
        for queue in ["gone", "taken"] { try await connection.declareQueue(QueueDeclaration(name: queue)) }

        _ = try await runOnThread { try TestBroker.closeConnections(named: name, reason: "transport test") }
        for queue in ["gone", "taken"] {
            await #expect(throws: AMQPError.self) { try await connection.deleteQueue(queue) }
        }
        #expect(await connection.recoveryCount == 0, "deleted while the connection was lost")
        // Another connection consumes one of them meanwhile: recovery leaves that one alone.
        let consumer = try await observer.consume(queue: "taken", prefetch: 1)
        try await waitUntil(timeout: .seconds(60), message: "the connection recovered") {
            await connection.recoveryCount == 1
        }
        await #expect(throws: AMQPError.self, "deleted by recovery") { try await observer.checkQueue("gone") }
        #expect(try await observer.checkQueue("taken").consumerCount == 1, "in use: left as it is")
        try? await consumer.cancel()
        await observer.close()
        await connection.close()
    }
}
