// Negative acknowledgements: nack with requeue brings a message back (redelivered), reject without
// requeue dead-letters it.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("nack, reject and dead-lettering")
struct NackRejectTests {
    @Test("nack with requeue delivers the message again, marked redelivered")
    func nackRequeue() async throws {
        try await withConnection("nack") { connection, scratch in
            let queue = scratch.queue("nack")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("n1")))
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            let first = try await inbox.next()
            #expect(first.properties.messageId == "n1")
            #expect(!first.redelivered)
            try await connection.nack(first.tag, requeue: true)
            let again = try await inbox.next()
            #expect(again.properties.messageId == "n1")
            #expect(again.redelivered)
            #expect(again.tag != first.tag)
            try await connection.ack(again.tag)
            try await consumer.cancel()
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }

    @Test("nack with multiple requeues every earlier delivery of the channel")
    func nackMultiple() async throws {
        try await withConnection("nack-multiple") { connection, scratch in
            let queue = scratch.queue("nack-multiple")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            _ = await connection.publish((1...3).map { .toQueue(queue, message("m\($0)")) })
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            let three = try await inbox.take(3)
            try await connection.nack(three[2].tag, multiple: true, requeue: true)
            let again = try await inbox.take(3)
            #expect(again.allSatisfy { $0.redelivered })
            #expect(Set(again.compactMap(\.properties.messageId)) == ["m1", "m2", "m3"])
            try await connection.ack(again[2].tag, multiple: true)
            try await consumer.cancel()
        }
    }

    @Test("reject without requeue sends the message to the queue's dead-letter exchange")
    func rejectToDeadLetters() async throws {
        try await withConnection("reject") { connection, scratch in
            let exchange = scratch.exchange("dlx")
            let deadLetters = scratch.queue("dead-letters")
            let queue = scratch.queue("work")
            try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .direct, durable: false))
            try await connection.declareQueue(QueueDeclaration(name: deadLetters, durable: false))
            try await connection.bind(BindingDeclaration(source: exchange, destination: deadLetters, routingKey: "failed"))
            try await connection.declareQueue(
                QueueDeclaration(name: queue, durable: false).deadLettering(to: exchange, routingKey: "failed"))

            try await connection.publish(.toQueue(queue, message("poison")))
            let consumer = try await connection.consume(queue: queue)
            let delivery = try await Inbox(consumer).next()
            try await connection.reject(delivery.tag, requeue: false)
            try await consumer.cancel()

            let deadLetterConsumer = try await connection.consume(queue: deadLetters)
            let deadLettered = try await Inbox(deadLetterConsumer).next()
            #expect(deadLettered.properties.messageId == "poison")
            #expect(deadLettered.exchange == exchange)
            #expect(deadLettered.routingKey == "failed")
            let death = try #require(deadLettered.properties.headers?["x-death"])
            guard case .array(let deaths) = death, case .table(let first)? = deaths.first else {
                Issue.record("x-death is not an array of tables: \(death)")
                return
            }
            #expect(first["reason"]?.stringValue == "rejected")
            #expect(first["queue"]?.stringValue == queue)
            try await connection.ack(deadLettered.tag)
            try await deadLetterConsumer.cancel()
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }
}
