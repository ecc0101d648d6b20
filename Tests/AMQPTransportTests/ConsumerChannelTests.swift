// Consumer channels are a bounded resource: the broker allows channel_max channels per connection, and a
// connection that asks for one more is closed (530) with every consumer and unconfirmed publish on it. A
// cancelled consumer's channel must therefore be closed once its deliveries are settled, and its number
// reused, so long-lived services that consume and cancel repeatedly (error-queue browsing) never run out.
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Consumer channels are closed and reused")
struct ConsumerChannelTests {
    @Test("2,100 consume/cancel cycles on one connection reuse one channel; no recovery, consuming still works")
    func manyCycles() async throws {
        try await withConnection("channel-cycles") { connection, scratch in
            let queue = scratch.queue("channel-cycles")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            // More cycles than RabbitMQ's default channel_max (2047) minus the control and publish channels.
            var channelsUsed: Set<UInt16> = []
            for _ in 0..<2_100 {
                let consumer = try await connection.consume(queue: queue, prefetch: 1)
                channelsUsed.insert(consumer.channel)
                try await consumer.cancel()
            }
            #expect(channelsUsed == [3])
            #expect(await connection.recoveryCount == 0)
            #expect(await connection.isConnected)
            #expect(await connection.openChannels.keys.sorted() == [AMQPConnection.controlChannel, AMQPConnection.publishChannel])

            try await connection.publish(.toQueue(queue, message("after-cycles")))
            let consumer = try await connection.consume(queue: queue)
            let delivery = try await Inbox(consumer).next()
            #expect(delivery.properties.messageId == "after-cycles")
            try await connection.ack(delivery.tag)
            try await consumer.cancel()
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }

    @Test("after cancel() the deliveries already received can be settled; then the channel closes and is reused")
    func heldDeliveriesAfterCancel() async throws {
        try await withConnection("held-after-cancel") { connection, scratch in
            let queue = scratch.queue("held-after-cancel")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            _ = await connection.publish((0..<3).map { .toQueue(queue, message("m\($0)")) })
            let consumer = try await connection.consume(queue: queue, prefetch: 10)
            let inbox = Inbox(consumer)
            let held = try await inbox.take(3)
            try await consumer.cancel()
            #expect(try await inbox.waitForEnd() == nil)

            // The channel stays open while the consumer's deliveries are unsettled: all three calls work.
            #expect(await connection.openChannels[consumer.channel] == held[0].tag.channelEpoch)
            try await connection.ack(held[0].tag)
            try await connection.nack(held[1].tag, requeue: true)
            #expect(await connection.openChannels[consumer.channel] != nil)
            try await connection.reject(held[2].tag, requeue: false)

            // Settled: the channel is closed (at once, unless frames read ahead must be handled first), so a
            // second acknowledgement is refused here instead of closing the channel with 406 at the broker.
            try await waitUntil(timeout: .seconds(10), message: "the channel closed") {
                await connection.openChannels[consumer.channel] == nil
            }
            let again = await amqpError { try await connection.ack(held[0].tag) }
            #expect(again?.code == .staleDelivery)
            #expect(try await connection.checkQueue(queue).messageCount == 1)

            let next = try await connection.consume(queue: queue)
            #expect(next.channel == consumer.channel)
            let redelivered = try await Inbox(next).next()
            #expect(redelivered.properties.messageId == "m1")
            try await connection.ack(redelivered.tag)
            try await next.cancel()
            #expect(await connection.recoveryCount == 0)
        }
    }

    @Test("a consumer cancelled and dropped without reading its deliveries hands them back and frees its channel")
    func cancelledWithoutReading() async throws {
        try await withConnection("cancel-unread") { connection, scratch in
            let queue = scratch.queue("cancel-unread")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            _ = await connection.publish((0..<5).map { .toQueue(queue, message("m\($0)")) })
            var channel: UInt16 = 0
            do {
                let consumer = try await connection.consume(queue: queue, prefetch: 10)
                channel = consumer.channel
                try await waitUntil(timeout: .seconds(20), message: "5 deliveries on the way to the consumer") {
                    try await connection.checkQueue(queue).messageCount == 0
                }
                // Into the stream, so that it is the dropped stream that hands them back (not the pump,
                // finding no consumer for deliveries still in flight after the cancel).
                try await waitUntil(timeout: .seconds(20), message: "the pump took the 5 into the stream") {
                    await connection.consumers[channel]?.unsettled.highestHandedOut == 5
                }
                try await consumer.cancel()
            }
            try await waitUntil(timeout: .seconds(20), message: "the 5 unread deliveries back in the queue") {
                try await connection.checkQueue(queue).messageCount == 5
            }
            try await waitUntil(timeout: .seconds(20), message: "the channel closed") {
                await connection.openChannels[channel] == nil
            }
        }
    }

    @Test("a consume beyond the negotiated channel_max fails by itself; the connection and its consumers stay")
    func channelLimit() async throws {
        var configuration = try AMQPConfiguration(url: TestBroker.url)
        configuration.channelMax = 5  // control 1, publish 2, consumers 3...5
        configuration.connectionName = TestBroker.uniqueName("amqp-test-channel-limit")
        let connection = try await AMQPConnection.connect(configuration, logger: quietLogger)
        let scratch = Scratch()
        do {
            let queue = scratch.queue("channel-limit")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            var consumers: [AMQPConsumer] = []
            for _ in 0..<3 { consumers.append(try await connection.consume(queue: queue)) }
            let error = await amqpError { _ = try await connection.consume(queue: queue) }
            #expect(error?.code == .channelLimit)
            #expect(error?.message.contains("5") == true)
            #expect(await connection.isConnected)
            #expect(await connection.recoveryCount == 0)

            // A cancelled consumer frees its number for the next one.
            try await consumers[1].cancel()
            let replacement = try await connection.consume(queue: queue)
            #expect(replacement.channel == consumers[1].channel)
            let inbox = Inbox(replacement)
            for consumer in [consumers[0], consumers[2]] { try await consumer.cancel() }
            try await connection.publish(.toQueue(queue, message("within-limit")))
            #expect(try await inbox.next().properties.messageId == "within-limit")
        } catch {
            await connection.close()
            await scratch.cleanUp(url: TestBroker.url)
            throw error
        }
        await connection.close()
        await scratch.cleanUp(url: TestBroker.url)
    }
}
