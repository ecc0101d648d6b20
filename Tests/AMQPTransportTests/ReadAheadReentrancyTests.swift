// What handling the frames read ahead at the start of a synchronous method (`onChannel`) may do to that
// method: the handling can lose the connection (a consumer's restart fails), which is not the broker
// closing the method's channel.
@testable import AMQPTransport
import BrokerTestSupport
import CRabbitMQ
import Foundation
import Testing

@Suite("Handling frames read ahead before a synchronous method", .timeLimit(.minutes(2)))
struct ReadAheadReentrancyTests {
    private static func configure(_ configuration: inout AMQPConfiguration) { configuration.rpcTimeout = .seconds(5) }

    @Test("a connection lost while the frames read ahead are handled fails a declare as a lost connection, not a channel close")
    func connectionLostWhileHandlingReadAhead() async throws {
        try await withConnection("read-ahead-lost", configure: Self.configure) { connection, scratch in
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
}

extension AMQPConnection {
    /// In one job: has the broker close `channel` and lets rabbitmq-c queue that close during a passive
    /// declare (as `withCloseReadAhead` does), then drops the socket, so that the consumer's restart fails,
    /// and declares again.
    fileprivate func declareAfterLosingRestart(of channel: UInt16, polling queue: String) throws {
        let session = try #require(session)
        #expect(amqp_basic_ack(session.state, channel, 9_999, 0) == AMQP_STATUS_OK.rawValue)
        let deadline = ContinuousClock.now + .seconds(20)
        while !session.hasQueuedFrames {
            try #require(ContinuousClock.now < deadline, "the channel close never came during a passive declare")
            _ = try checkQueue(queue)
        }
        shutdown(session.socketFD, Int32(SHUT_RDWR))
        _ = try checkQueue(queue)
    }
}
