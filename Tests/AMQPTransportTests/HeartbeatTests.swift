// Missed heartbeats: a broker that stops answering (frozen with SIGSTOP, as a hung VM or a dead network
// path would) is noticed within about two heartbeat intervals, and the connection recovers once it is back.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Heartbeats")
struct HeartbeatTests {
    @Test("a frozen broker is detected within ~2 heartbeats; the connection recovers when it thaws")
    func missedHeartbeatsAreDetected() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(
            url: "\(node.url)?heartbeat=1&connection_timeout=1000", connectionName: "heartbeat",
            recovery: RecoveryPolicy(initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500)))
        #expect(await connection.negotiatedHeartbeat == 1)
        let queue = TestBroker.uniqueName("amqp-test-heartbeat")
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
        let consumer = try await connection.consume(queue: queue)
        let inbox = Inbox(consumer)

        // Quiet but healthy: heartbeats alone keep the connection up.
        try await Task.sleep(for: .seconds(3))
        #expect(await connection.isConnected)
        #expect(await connection.recoveryCount == 0)

        let pid = try #require(node.vmProcessID)
        #expect(kill(pid, SIGSTOP) == 0)
        var thawed = false
        defer { if !thawed { kill(pid, SIGCONT) } }
        let frozenAt = ContinuousClock.now
        try await waitUntil(timeout: .seconds(6), poll: .milliseconds(50), message: "the loss to be noticed") {
            await !connection.isConnected
        }
        let noticedAfter = ContinuousClock.now - frozenAt
        #expect(noticedAfter < .seconds(4), "noticed after \(noticedAfter) (2 heartbeats = 2 s)")
        let lastError = await connection.lastError
        #expect(lastError?.code == .connectionLost)
        #expect(lastError?.message.contains("heartbeat") == true, "\(String(describing: lastError))")

        kill(pid, SIGCONT)
        thawed = true
        try await connection.waitUntilConnected(timeout: .seconds(30))
        #expect(await connection.recoveryCount >= 1)
        try await connection.publish(.toQueue(queue, message("after-thaw")))
        let delivery = try await inbox.next(timeout: .seconds(10))
        #expect(delivery.properties.messageId == "after-thaw")
        try await connection.ack(delivery.tag)
        try await consumer.cancel()
        try await connection.deleteQueue(queue)
        await connection.close()
    }
}
