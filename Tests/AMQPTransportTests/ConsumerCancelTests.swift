// Consumers ending: cancelled by the broker (its queue was deleted) or by the client.
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Consumer cancellation")
struct ConsumerCancelTests {
    @Test("deleting the queue while consuming ends the deliveries stream with .consumerCancelled")
    func brokerCancelsConsumer() async throws {
        try await withConnection("broker-cancel") { connection, scratch in
            let queue = scratch.queue("deleted-while-consuming")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            try await connection.publish(.toQueue(queue, message("one")))
            let one = try await inbox.next()
            try await connection.ack(one.tag)

            // Deleted from another connection, as an operator or another service would.
            _ = try await withConnection("broker-cancel-deleter") { other, _ in
                try await other.deleteQueue(queue)
            }
            let error = try await inbox.waitForEnd()
            let amqp = try #require(error as? AMQPError)
            #expect(amqp.code == .consumerCancelled)
            #expect(amqp.message.contains(queue))
            #expect(await connection.isConnected)
            // Cancelling a consumer the broker already cancelled is harmless.
            try await consumer.cancel()
        }
    }

    // Found by a code review: cancel() looked the consumer up by channel number only, and a new consumer
    // takes the lowest free number, so a late cancel of an ended consumer stopped the new one.
    @Test("cancelling a consumer the broker ended does not stop the next consumer on its channel number")
    func lateCancelSparesTheNextConsumer() async throws {
        try await withConnection("late-cancel") { connection, scratch in
            let gone = scratch.queue("late-cancel-gone")
            let next = scratch.queue("late-cancel-next")
            try await connection.declareQueue(QueueDeclaration(name: gone, durable: false))
            try await connection.declareQueue(QueueDeclaration(name: next, durable: false))
            let old = try await connection.consume(queue: gone)
            let oldInbox = Inbox(old)
            _ = try await withConnection("late-cancel-deleter") { other, _ in try await other.deleteQueue(gone) }
            _ = try await oldInbox.waitForEnd()

            let consumer = try await connection.consume(queue: next)
            #expect(consumer.channel == old.channel, "the premise: the ended consumer's channel number is reused")
            let inbox = Inbox(consumer)
            try await old.cancel()
            try await connection.publish(.toQueue(next, message("after")))
            let delivery = try await inbox.next()
            #expect(String(decoding: delivery.message.body, as: UTF8.self) == "after")
            try await connection.ack(delivery.tag)
            try await consumer.cancel()
        }
    }

    @Test("cancel() finishes the stream; deliveries already received can still be acknowledged")
    func clientCancels() async throws {
        try await withConnection("client-cancel") { connection, scratch in
            let queue = scratch.queue("client-cancel")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("one")))
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            let one = try await inbox.next()
            try await consumer.cancel()
            #expect(try await inbox.waitForEnd() == nil)
            try await connection.ack(one.tag)
            try await connection.publish(.toQueue(queue, message("two")))
            try await Task.sleep(for: .milliseconds(300))
            #expect(inbox.count == 1)
            #expect(try await connection.checkQueue(queue).messageCount == 1)
        }
    }

    @Test("a reader that leaves the loop cancels the consumer; what it never took returns to the queue at once")
    func abandonedIteration() async throws {
        try await withConnection("abandoned") { connection, scratch in
            let queue = scratch.queue("abandoned")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            _ = await connection.publish((0..<10).map { .toQueue(queue, message("m\($0)")) })
            let consumer = try await connection.consume(queue: queue, prefetch: 10)
            // Takes two, acknowledges neither, and leaves the loop with eight more buffered.
            var held: [AMQPDelivery] = []
            for try await delivery in consumer.deliveries {
                held.append(delivery)
                if held.count == 2 { break }
            }
            try await waitUntil(timeout: .seconds(20), message: "the 8 not taken ready again, no consumer") {
                let state = try await connection.checkQueue(queue)
                return state.messageCount == 8 && state.consumerCount == 0
            }
            // The two it took are still its own to settle.
            try await connection.ack(held[0].tag)
            try await connection.nack(held[1].tag, requeue: true)
            try await waitUntil(timeout: .seconds(20), message: "9 ready") { try await connection.checkQueue(queue).messageCount == 9 }

            // A task cancelled while waiting for deliveries abandons its consumer too.
            let second = try await connection.consume(queue: queue, prefetch: 3)
            let taken = Box(0)
            let reader = Task {
                for try await _ in second.deliveries { taken.withLock { $0 += 1 } }
                return taken.withLock { $0 }
            }
            try await waitUntil(timeout: .seconds(20), message: "the reader took 3") { taken.withLock { $0 } == 3 }
            reader.cancel()
            #expect(try await reader.value == 3)
            // It took all three (and acknowledged none): they stay unacknowledged on its channel until settled.
            try await waitUntil(timeout: .seconds(20), message: "no consumer left") {
                try await connection.checkQueue(queue).consumerCount == 0
            }
            #expect(try await connection.checkQueue(queue).messageCount == 6)
        }
    }

    @Test("deliveries in flight when the client cancels go back to the queue instead of hanging unacknowledged")
    func inFlightDeliveriesAreReturned() async throws {
        try await withConnection("cancel-in-flight") { connection, scratch in
            let queue = scratch.queue("cancel-in-flight")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let count = 200
            let outcomes = await connection.publish((0..<count).map { .toQueue(queue, message("m\($0)")) })
            #expect(outcomes.allSatisfy { $0.isConfirmed })
            for _ in 0..<5 {
                let consumer = try await connection.consume(queue: queue, prefetch: 500)
                try await consumer.cancel()
                // Whatever reached the stream before the cancel is the consumer's to settle.
                var received: [AMQPDelivery] = []
                for try await delivery in consumer.deliveries { received.append(delivery) }
                if let last = received.last { try await connection.nack(last.tag, multiple: true, requeue: true) }
                // Everything else must be back in the queue, not stuck unacknowledged on the channel.
                try await waitUntil(timeout: .seconds(20), message: "all \(count) messages ready again") {
                    try await connection.checkQueue(queue).messageCount == count
                }
            }
        }
    }
}
