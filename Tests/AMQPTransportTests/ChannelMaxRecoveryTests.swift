// The broker comes back from a restart with a lower channel_max than the connection's consumers use (an
// operator changed rabbitmq.conf meanwhile). Opening a channel above the limit makes the broker close the
// whole connection, so restoring such a consumer as it was would fail every recovery attempt, forever,
// and take the other consumers and the publishing down with it.
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Recovery onto a broker with a lower channel_max", .timeLimit(.minutes(3)))
struct ChannelMaxRecoveryTests {
    @Test("a consumer above the new channel_max ends with .channelLimit; the others and publishing recover")
    func lowerChannelMaxAfterRestart() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(extraConfig: "channel_max = 16") }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(
            url: node.url, connectionName: "channel-max-recovery",
            recovery: RecoveryPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1)))
        let queues = (0..<3).map { TestBroker.uniqueName("amqp-test-channel-max-\($0)") }
        var inboxes: [Inbox] = []
        var channels: [UInt16] = []
        for queue in queues {
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: true))
            let consumer = try await connection.consume(queue: queue)
            inboxes.append(Inbox(consumer))
            channels.append(consumer.channel)
        }
        // Channel 1 declares, 2 publishes; the consumers hold 3, 4 and 5.
        #expect(channels == [3, 4, 5])

        try await runOnThread {
            try node.stop()
            try node.reconfigure(extraConfig: "channel_max = 4")
            try node.start()
        }
        try await waitUntil(timeout: .seconds(60), message: "the connection to recover") {
            let (recoveries, connected) = await (connection.recoveryCount, connection.isConnected)
            return recoveries >= 1 && connected
        }

        // The consumer on channel 5 cannot be restored: it ends, saying why.
        try await waitUntil(timeout: .seconds(10), message: "the consumer above the limit to end") { inboxes[2].end != nil }
        guard case .failure(let error as AMQPError)? = inboxes[2].end else {
            Issue.record("the consumer above channel_max ended without an AMQPError: \(String(describing: inboxes[2].end))")
            return
        }
        #expect(error.code == .channelLimit)
        #expect(error.message.contains("channel_max 4"))
        #expect(await connection.consumers[5] == nil)

        // The others and the publish channel work as before.
        for (queue, inbox) in zip(queues.prefix(2), inboxes.prefix(2)) {
            #expect(inbox.end == nil)
            try await connection.publish(.toQueue(queue, message("after-\(queue)")))
            let delivery = try await inbox.next()
            #expect(delivery.properties.messageId == "after-\(queue)")
            try await connection.ack(delivery.tag)
        }
        #expect(await connection.recoveryCount == 1, "one recovery, not a loop of failing ones")
        await connection.close()
    }
}
