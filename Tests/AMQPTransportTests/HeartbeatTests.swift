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
        // A long connect timeout: reconnect attempts against the frozen broker hang that long, and callers
        // must not wait behind them. Heartbeats every 2 s, not 1: in the first minute of a full test run
        // (broker nodes booting beside every test) a 1 s heartbeat lost the quiet connection once, which
        // is the false positive RabbitMQ's guide warns of for intervals under 5 s.
        let log = Box<[CapturingLogHandler.Entry]>([])
        let connection = try await AMQPConnection.connect(
            url: "\(node.url)?heartbeat=2&connection_timeout=5000", connectionName: "heartbeat",
            recovery: RecoveryPolicy(initialDelay: .milliseconds(100), maximumDelay: .milliseconds(500)),
            logger: CapturingLogHandler.logger(into: log))
        #expect(await connection.negotiatedHeartbeat == 2)
        let queue = TestBroker.uniqueName("amqp-test-heartbeat")
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
        let consumer = try await connection.consume(queue: queue)
        let inbox = Inbox(consumer)

        // Quiet but healthy: heartbeats alone keep the connection up.
        try await Task.sleep(for: .seconds(5))
        #expect(await connection.isConnected, "lost while quiet: \(log.withLock { $0 }.filter { $0.message == "AMQP connection lost" })")
        #expect(await connection.recoveryCount == 0)

        let pid = try #require(node.vmProcessID)
        #expect(kill(pid, SIGSTOP) == 0)
        var thawed = false
        defer { if !thawed { kill(pid, SIGCONT) } }
        let frozenAt = ContinuousClock.now
        try await waitUntil(timeout: .seconds(12), poll: .milliseconds(50), message: "the loss to be noticed") {
            await !connection.isConnected
        }
        let noticedAfter = ContinuousClock.now - frozenAt
        #expect(noticedAfter < .seconds(7), "noticed after \(noticedAfter) (2 heartbeats = 4 s)")
        let lost = log.withLock { $0 }.filter { $0.message == "AMQP connection lost" }
        #expect(lost.count == 1)
        #expect(lost.first?.metadata["error"]?.contains("heartbeat timeout") == true, "\(lost)")

        // While reconnect attempts hang on the frozen broker, the connection answers at once.
        try await Task.sleep(for: .milliseconds(500))
        let asked = ContinuousClock.now
        let outcomes = await connection.publish([.toQueue(queue, message("during-freeze"))])
        #expect(!(await connection.isConnected))
        #expect(ContinuousClock.now - asked < .seconds(1), "publish waited \(ContinuousClock.now - asked)")
        guard case .failed(let failure) = outcomes.first else {
            Issue.record("a publish during the freeze: \(outcomes)")
            return
        }
        #expect(failure.code == .notConnected)

        kill(pid, SIGCONT)
        thawed = true
        try await connection.waitUntilConnected(timeout: .seconds(30))
        #expect(await connection.recoveryCount >= 1)
        try await connection.publish(.toQueue(queue, message("after-thaw")))
        let delivery = try await inbox.next(timeout: .seconds(30))
        #expect(delivery.properties.messageId == "after-thaw")
        try await connection.ack(delivery.tag)
        try await consumer.cancel()
        try await connection.deleteQueue(queue)
        await connection.close()
    }
}
