// What handling the frames read ahead at the start of a synchronous method (`onChannel`) may do to that
// method: the handling can lose the connection (a consumer's restart fails) or close the method's channel
// itself (a cancelled consumer's last delivery handed back). Neither is the broker closing that channel.
@testable import AMQPTransport
import BrokerTestSupport
import CRabbitMQ
import Foundation
import Testing

@Suite("Handling frames read ahead before a synchronous method", .timeLimit(.minutes(2)))
struct ReadAheadReentrancyTests {
    @Test("a connection lost while the frames read ahead are handled fails a declare as a lost connection, not a channel close")
    func connectionLostWhileHandlingReadAhead() async throws {
        try await withConnection("read-ahead-lost", configure: shortRPCTimeout) { connection, scratch in
            let queue = scratch.queue("read-ahead-lost")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("held")))
            let consumer = try await connection.consume(queue: queue, prefetch: 1)
            let inbox = Inbox(consumer)
            _ = try await inbox.next()

            let error = await amqpError {
                try await connection.declareAfterLosingRestart(of: consumer.channel, polling: queue)
            }
            // A channel close (no reply code) reads as the broker refusing the declare: RequestClient, for
            // one, then stops for good instead of declaring its reply queue again after the recovery.
            #expect(error?.code != .channelClosed, "\(String(describing: error))")
            #expect([.connectionLost, .notConnected, .connectionClosed].contains(error?.code))
        }
    }

    @Test("ackConfirmed of a cancelled consumer's last delivery returns when handling the frames read ahead closes its channel")
    func confirmedAckWhenReadAheadClosesTheChannel() async throws {
        try await withConnection("read-ahead-own-close", configure: shortRPCTimeout) { connection, scratch in
            let queue = scratch.queue("read-ahead-own-close")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("first")))
            let consumer = try await connection.consume(queue: queue, prefetch: 10)
            let inbox = Inbox(consumer)
            let first = try await inbox.next()

            let failure = try await connection.cancelThenConfirmAck(first.tag, tag: consumer.consumerTag, queue: queue)
            // The channel was closed by this client after the ack: close-ok came after it, so it was handled.
            #expect(failure == nil, "\(String(describing: failure))")
            #expect(await connection.openChannels[first.tag.channel] == nil)
            // "first" is gone (acknowledged); "second", never handed out, went back.
            try await waitUntil(timeout: .seconds(10), message: "only the second message left") {
                try await connection.checkQueue(queue).messageCount == 1
            }
        }
    }

    @Test("the broker closes a thousand consumer channels at once: each consumer starts again, without nesting a restart per close")
    func closeStorm() async throws {
        try await withConnection("read-ahead-storm") { connection, scratch in
            let queue = scratch.queue("read-ahead-storm")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            // Handling each close read ahead used to start the consumer again inside the handling of the
            // previous one (restart, onChannel, handleReadAhead, next close, restart, …): about 20 KiB of
            // the connection thread's stack per close in a debug build, which overflowed at some 340.
            let count = min(await connection.channelLimitForTest - 2, 1000)
            var consumers: [AMQPConsumer] = []
            for _ in 0..<count { consumers.append(try await connection.consume(queue: queue, prefetch: 1)) }
            let before = await connection.openChannels
            let channels = consumers.map(\.channel)
            try await connection.closeAllReadAhead(channels, polling: queue)
            try await waitUntil(timeout: .seconds(60), message: "every consumer on a fresh channel") {
                let now = await connection.openChannels
                return channels.allSatisfy { now[$0] != nil && now[$0] != before[$0] }
            }
            #expect(await connection.recoveryCount == 0)
            for consumer in consumers { try await consumer.cancel() }
        }
    }
}

extension AMQPConnection {
    /// In one job: has the broker close `channel` and lets rabbitmq-c queue that close during a passive
    /// declare (as `withCloseReadAhead` does), then drops the socket, so that the consumer's restart fails,
    /// and declares again.
    fileprivate func declareAfterLosingRestart(of channel: UInt16, polling queue: String) throws {
        let session = try #require(session)
        try queueBrokerClose(of: channel, polling: queue)
        shutdown(session.socketFD, Int32(SHUT_RDWR))
        _ = try checkQueue(queue)
    }

    /// In one job: a second message for the consumer on `first`'s channel is on the socket when its
    /// basic.cancel goes, so rabbitmq-c queues that delivery while waiting for cancel-ok; then `first` is
    /// acknowledged with `ackConfirmed`, whose handling of that delivery (handed back) closes the channel.
    /// The error `ackConfirmed` threw, nil when none.
    fileprivate func cancelThenConfirmAck(_ first: DeliveryTag, tag: String, queue: String) throws -> AMQPError? {
        let session = try #require(session)
        // On the control channel (not in confirm mode): nothing for the confirm bookkeeping to count.
        let arena = CArena()
        #expect(amqp_basic_publish(session.state, Self.controlChannel, arena.bytes(""), arena.bytes(queue), 0, 0, nil,
                                   arena.bytes("second")) == AMQP_STATUS_OK.rawValue)
        var readable = pollfd(fd: session.socketFD, events: Int16(POLLIN), revents: 0)
        #expect(poll(&readable, 1, 10_000) == 1, "the second delivery never came")
        usleep(200_000)
        try cancelConsumer(channel: first.channel, tag: tag)
        try #require(session.hasQueuedFrames, "the second delivery was not read ahead during basic.cancel")
        #expect(openChannels[first.channel] == first.channelEpoch)
        do {
            try ackConfirmed(first)
            return nil
        } catch let error as AMQPError {
            return error
        }
    }

    fileprivate var channelLimitForTest: Int { Int(session?.channelMax ?? 0) }

    /// In one job: has the broker close every one of `channels` and lets rabbitmq-c queue all the closes
    /// during one passive declare.
    fileprivate func closeAllReadAhead(_ channels: [UInt16], polling queue: String) throws {
        let session = try #require(session)
        for channel in channels {
            #expect(amqp_basic_ack(session.state, channel, 9_999, 0) == AMQP_STATUS_OK.rawValue)
        }
        usleep(1_000_000)
        _ = try checkQueue(queue)
        try #require(session.hasQueuedFrames, "the closes were not read ahead during the passive declare")
    }
}
