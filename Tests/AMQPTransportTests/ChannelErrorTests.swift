// A channel error (404 NOT_FOUND, …) closes only its channel: the operation fails with .channelClosed and
// the reply code, and the connection, with every other channel, stays usable.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Channel errors leave the connection usable")
struct ChannelErrorTests {
    @Test("a passive declare of a missing queue fails with 404; declare, publish and consume work afterwards")
    func passiveDeclareOfMissingQueue() async throws {
        try await withConnection("passive-404") { connection, scratch in
            let missing = TestBroker.uniqueName("amqp-test-missing")
            let error = await amqpError { _ = try await connection.checkQueue(missing) }
            #expect(error?.code == .channelClosed)
            #expect(error?.replyCode == 404)
            #expect(error?.message.contains("NOT_FOUND") == true)
            #expect(error?.operation?.contains(missing) == true)
            #expect(await connection.isConnected)
            #expect(await connection.recoveryCount == 0)

            let queue = scratch.queue("after-404")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("after")))
            let consumer = try await connection.consume(queue: queue)
            let delivery = try await Inbox(consumer).next()
            #expect(delivery.properties.messageId == "after")
            try await connection.ack(delivery.tag)
            try await consumer.cancel()
            let missingExchange = await amqpError { try await connection.checkExchange(TestBroker.uniqueName("x")) }
            #expect(missingExchange?.replyCode == 404)
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }

    @Test("a publish to a missing exchange fails with 404 and the next publish succeeds")
    func publishToMissingExchange() async throws {
        try await withConnection("publish-404") { connection, scratch in
            let queue = scratch.queue("after-publish-404")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let missing = TestBroker.uniqueName("amqp-test-missing-exchange")

            let error = await amqpError {
                try await connection.publish(PublishRequest(exchange: missing, routingKey: "k", message: message("lost")))
            }
            #expect(error?.code == .channelClosed)
            #expect(error?.replyCode == 404)
            #expect(error?.message.contains(missing) == true)
            #expect(await connection.isConnected)

            try await connection.publish(.toQueue(queue, message("next")))
            // In one batch, everything after the failing publish shares its fate (the channel is gone) and
            // is reported as failed, never as confirmed; a batch after that goes through again.
            let batch = await connection.publish([
                .toQueue(queue, message("before")),
                PublishRequest(exchange: missing, routingKey: "k", message: message("lost")),
                .toQueue(queue, message("after")),
            ])
            #expect(batch[1] != .confirmed)
            #expect(batch[2] != .confirmed)
            if case .failed(let failure) = batch[1] { #expect(failure.replyCode == 404) }
            #expect(await connection.publish([.toQueue(queue, message("last"))]) == [.confirmed])
            // "before" reached the queue whether or not its confirm made it out before the channel closed.
            #expect(try await connection.checkQueue(queue).messageCount == 3)
            #expect(await connection.recoveryCount == 0)
        }
    }
}
