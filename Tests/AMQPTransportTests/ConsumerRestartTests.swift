// When the broker closes a consumer's channel, the consumer is restarted on a fresh channel. If that restart
// runs into a connection failure, recovery (which keeps the consumers of a lost connection) must restore
// it: the consumer must not be dropped while the connection comes back looking healthy.
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Consumer restart after a broker channel close")
struct ConsumerRestartTests {
    @Test("a restart that hits a connection failure leaves the consumer to recovery, which restores it")
    func restartHitsConnectionFailure() async throws {
        let recovery = RecoveryPolicy(initialDelay: .milliseconds(50), maximumDelay: .seconds(1))
        try await withConnection("restart-connection-failure", recovery: recovery) { connection, scratch in
            let queue = scratch.queue("restart-connection-failure")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            try await connection.publish(.toQueue(queue, message("before")))
            try await connection.ack(try await inbox.next().tag)

            await connection.brokerClosesChannelThenSocketBreaks(consumer.channel)
            try await waitUntil(timeout: .seconds(20), message: "recovery") { await connection.recoveryCount == 1 }
            try await connection.waitUntilConnected()
            #expect(inbox.end == nil, "the deliveries stream ended: the consumer was dropped")
            #expect(await connection.consumers[consumer.channel] != nil)

            try await connection.publish(.toQueue(queue, message("after")))
            // The ack of "before" may not have reached the broker when the socket broke (a loaded machine):
            // then it comes again, redelivered, as at-least-once delivery allows.
            var after = try await inbox.next()
            while after.properties.messageId == "before" {
                #expect(after.redelivered, "a copy of 'before' that is not a redelivery")
                try await connection.ack(after.tag)
                after = try await inbox.next()
            }
            #expect(after.properties.messageId == "after")
            try await connection.ack(after.tag)
            try await consumer.cancel()
        }
    }
}

extension AMQPConnection {
    /// What the pump does when the broker closes `channel`, with the socket broken just before, so the
    /// consumer's restart (channel.open on it) fails at the connection level, deterministically.
    fileprivate func brokerClosesChannelThenSocketBreaks(_ channel: UInt16) {
        simulateNetworkFailure()
        channelClosedByBroker(channel, error: AMQPError(
            .channelClosed, replyCode: 406, message: "PRECONDITION_FAILED - closed by a test", operation: "channel \(channel)"))
    }
}
