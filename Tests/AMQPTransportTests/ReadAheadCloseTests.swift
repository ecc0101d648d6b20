// rabbitmq-c's synchronous methods wait for their reply on the socket only: frames of other channels that
// arrive first are queued for later, and a later synchronous method does not look in that queue. A
// channel.close the broker sent for a consumer channel (consumer_timeout, an acknowledgement it refused)
// could so sit queued when the client cancelled that consumer or confirmed an acknowledgement on it; the
// broker ignores everything but close-ok on a closing channel, so the method waited for the RPC timeout
// (30 s) and the connection was dropped. Seen as an error-queue pass that outlasted consumer_timeout
// failing with "request timed out (during basic.cancel …)" instead of naming consumer_timeout.
@testable import AMQPTransport
import BrokerTestSupport
import CRabbitMQ
import Foundation
import Testing

@Suite("A channel close read ahead during another method", .timeLimit(.minutes(2)))
struct ReadAheadCloseTests {
    @Test("cancel() of a consumer whose channel close was read ahead returns; the connection stays up")
    func cancelAfterReadAheadClose() async throws {
        try await withConnection("read-ahead-cancel", configure: shortRPCTimeout) { connection, scratch in
            let queue = scratch.queue("read-ahead-cancel")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("held")))
            let consumer = try await connection.consume(queue: queue, prefetch: 1)
            let inbox = Inbox(consumer)
            let held = try await inbox.next()
            let (channel, tag) = (consumer.channel, consumer.consumerTag)

            let started = ContinuousClock.now
            try await connection.withCloseReadAhead(on: channel, polling: queue) { connection in
                try connection.cancelConsumer(channel: channel, tag: tag)
            }
            #expect(ContinuousClock.now - started < .seconds(5), "the cancel waited for the RPC timeout")
            #expect(await connection.recoveryCount == 0)
            #expect(await connection.isConnected)
            #expect(try await inbox.waitForEnd() == nil)

            // The broker handed the held message back with the channel; its tag is stale now.
            let stale = await amqpError { try await connection.ack(held.tag) }
            #expect(stale?.code == .staleDelivery)
            #expect(stale?.replyCode == 406)
            try await waitUntil(timeout: .seconds(10), message: "the held message is back in the queue") {
                try await connection.checkQueue(queue).messageCount == 1
            }
            #expect(await connection.openChannels[channel] == nil)
        }
    }

    @Test("ackConfirmed on a channel whose close was read ahead fails with the broker's reason; the consumer goes on")
    func confirmedAckAfterReadAheadClose() async throws {
        try await withConnection("read-ahead-ack", configure: shortRPCTimeout) { connection, scratch in
            let queue = scratch.queue("read-ahead-ack")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("held")))
            let consumer = try await connection.consume(queue: queue, prefetch: 1)
            let inbox = Inbox(consumer)
            let held = try await inbox.next()

            let started = ContinuousClock.now
            let error = await amqpError {
                try await connection.withCloseReadAhead(on: consumer.channel, polling: queue) { connection in
                    try connection.ackConfirmed(held.tag)
                }
            }
            #expect(ContinuousClock.now - started < .seconds(5), "the confirming method waited for the RPC timeout")
            #expect(error?.code == .channelClosed)
            #expect(error?.replyCode == 406, "the broker's reason: \(String(describing: error))")
            #expect(await connection.recoveryCount == 0)

            // The consumer starts again on a fresh channel and gets the message the broker took back.
            let again = try await inbox.next()
            #expect(again.properties.messageId == "held")
            #expect(again.tag.channelEpoch != held.tag.channelEpoch)
            try await connection.ack(again.tag)
            try await consumer.cancel()
        }
    }

    @Test("ackConfirmed whose reply is the broker closing the channel: the consumer starts again on a fresh one")
    func confirmedAckAnsweredByClose() async throws {
        try await withConnection("close-as-reply", configure: shortRPCTimeout) { connection, scratch in
            let queue = scratch.queue("close-as-reply")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("held")))
            let consumer = try await connection.consume(queue: queue, prefetch: 1)
            let inbox = Inbox(consumer)
            let held = try await inbox.next()

            // A tag the broker never sent on that channel: it closes the channel (406), and the close is
            // the reply the confirming basic.qos gets.
            let unknown = DeliveryTag(channel: held.tag.channel, channelEpoch: held.tag.channelEpoch, value: held.tag.value + 100)
            let error = await amqpError { try await connection.ackConfirmed(unknown) }
            #expect(error?.code == .channelClosed)
            #expect(error?.replyCode == 406)
            #expect(await connection.recoveryCount == 0)

            let again = try await inbox.next()
            #expect(again.properties.messageId == "held")
            let stale = await amqpError { try await connection.ack(held.tag) }
            #expect(stale?.code == .staleDelivery)
            #expect(stale?.replyCode == 406, "the broker's reason: \(String(describing: stale))")
            try await connection.ack(again.tag)
            try await consumer.cancel()
        }
    }
}

/// A short RPC timeout, so that a method left waiting for a reply fails a test in 5 s rather than 30.
func shortRPCTimeout(_ configuration: inout AMQPConfiguration) { configuration.rpcTimeout = .seconds(5) }

extension AMQPConnection {
    /// In one job, so the pump cannot read frames in between: has the broker close `channel` (an
    /// acknowledgement of a tag it never delivered there: 406 PRECONDITION_FAILED), runs passive declares of
    /// `queue` on the control channel until rabbitmq-c has read that close while waiting for a declare-ok
    /// and queued it, then runs `next`.
    fileprivate func withCloseReadAhead(on channel: UInt16, polling queue: String,
                                        _ next: @Sendable (isolated AMQPConnection) throws -> Void) throws {
        try queueBrokerClose(of: channel, polling: queue)
        try next(self)
    }

    /// The first part of `withCloseReadAhead`, for a caller that goes on in the same job.
    func queueBrokerClose(of channel: UInt16, polling queue: String) throws {
        let session = try #require(session)
        #expect(amqp_basic_ack(session.state, channel, 9_999, 0) == AMQP_STATUS_OK.rawValue)
        let deadline = ContinuousClock.now + .seconds(20)
        while !session.hasQueuedFrames {
            try #require(ContinuousClock.now < deadline, "the channel close never came during a passive declare")
            _ = try checkQueue(queue)
        }
    }
}
