// Volume: many confirmed publishes in batches, all confirmed, all delivered exactly as published.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Publish and consume against the real broker")
struct PublishConsumeTests {
    @Test("10,000 confirmed publishes are all confirmed and all arrive, in order")
    func tenThousandConfirmedPublishes() async throws {
        try await withConnection("confirms") { connection, scratch in
            let queue = scratch.queue("confirms")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let count = 10_000
            let requests = (0..<count).map { i in
                PublishRequest.toQueue(queue, AMQPMessage(body: Data("m\(i)".utf8), properties: BasicProperties(messageId: "m\(i)")))
            }
            var outcomes: [PublishOutcome] = []
            for chunk in stride(from: 0, to: count, by: 500) {
                outcomes += await connection.publish(Array(requests[chunk..<min(chunk + 500, count)]))
            }
            #expect(outcomes.count == count)
            #expect(outcomes.allSatisfy { $0 == .confirmed })
            #expect(try await connection.checkQueue(queue).messageCount == count)

            let consumer = try await connection.consume(queue: queue, prefetch: 500)
            var deliveries = consumer.deliveries.makeAsyncIterator()
            var received: [AMQPDelivery] = []
            while received.count < count {
                let batch = try await deliveries.next(upTo: 250)
                try #require(!batch.isEmpty, "the consumer ended after \(received.count) deliveries")
                try await connection.ack(batch.last!.tag, multiple: true)
                received += batch
            }
            // One queue, one consumer: the broker delivers in publishing order.
            #expect(received.map(\.properties.messageId) == requests.map(\.message.properties.messageId))
            #expect(received.allSatisfy { $0.message.body == Data($0.properties.messageId!.utf8) && !$0.redelivered })
            // Cancel before the queue goes, so the broker does not cancel the consumer itself.
            try await consumer.cancel()
            #expect(try await deliveries.next() == nil)
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }

    // A review of the cancellable publish: a task cancelled before it published still sent its messages
    // and reported them failed, so a caller that retried sent them twice.
    @Test("a publish from a task cancelled already sends nothing and reports .cancelled")
    func cancelledTaskSendsNothing() async throws {
        try await withConnection("cancelled-publish") { connection, scratch in
            let queue = scratch.queue("cancelled-publish")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let task = Task { () async -> [PublishOutcome] in
                withUnsafeCurrentTask { $0?.cancel() }
                return await connection.publish([.toQueue(queue, message("never"))])
            }
            let outcomes = await task.value
            guard case .failed(let error)? = outcomes.first else {
                Issue.record("expected a failed outcome, got \(outcomes)")
                return
            }
            #expect(error.code == .cancelled)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await connection.checkQueue(queue).messageCount == 0, "nothing sent")
            #expect(await connection.publish([.toQueue(queue, message("later"))]) == [.confirmed], "the connection is fine")
        }
    }

    @Test("a consume → publish → ack loop isolated to the connection itself (its own thread) works")
    func loopIsolatedToTheConnection() async throws {
        try await withConnection("isolated-loop") { connection, scratch in
            let source = scratch.queue("isolated-source")
            let target = scratch.queue("isolated-target")
            try await connection.declareQueue(QueueDeclaration(name: source, durable: false))
            try await connection.declareQueue(QueueDeclaration(name: target, durable: false))
            let outcomes = await connection.publish((0..<500).map { .toQueue(source, message("m\($0)")) })
            #expect(outcomes.allSatisfy { $0 == .confirmed })
            let moved = try await Self.move(500, from: source, to: target, on: connection)
            #expect(moved == 500)
            #expect(try await connection.checkQueue(source).messageCount == 0)
            #expect(try await connection.checkQueue(target).messageCount == 500)
        }
    }

    /// Runs on the connection's executor: publish and ack are plain calls, and waiting for deliveries
    /// keeps the isolation (`next(upTo:isolation:)`).
    private static func move(_ count: Int, from source: String, to target: String,
                             on connection: isolated AMQPConnection) async throws -> Int {
        let consumer = try connection.consume(queue: source, prefetch: 100)
        var deliveries = consumer.deliveries.makeAsyncIterator()
        var moved = 0
        while moved < count {
            let batch = try await deliveries.next(upTo: 50)
            connection.preconditionIsolated()
            let outcomes = await connection.publish(batch.map { .toQueue(target, $0.message) })
            guard outcomes.allSatisfy({ $0 == .confirmed }) else { throw AMQPError(.nacked, message: "\(outcomes)") }
            try connection.ack(batch.last!.tag, multiple: true)
            moved += batch.count
        }
        try await consumer.cancel()
        return moved
    }

    @Test("bodies larger than a frame, and empty ones, arrive intact")
    func bodySizes() async throws {
        try await withConnection("body-sizes") { connection, scratch in
            let queue = scratch.queue("body-sizes")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let sizes = [0, 1, 131_064, 131_065, 1_000_000]  // frame_max 131072 less 8 bytes of framing
            let bodies = sizes.map { size in Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }) }
            let outcomes = await connection.publish(bodies.enumerated().map { .toQueue(queue, AMQPMessage(
                body: $1, properties: BasicProperties(messageId: "b\($0)"))) })
            #expect(outcomes.allSatisfy { $0 == .confirmed })
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            let received = try await inbox.take(sizes.count)
            #expect(received.map(\.message.body) == bodies)
            try await connection.ack(received.last!.tag, multiple: true)
            try await consumer.cancel()
        }
    }

    @Test("long queue and connection names still make a valid consumer tag (at most 255 bytes)")
    func longNames() async throws {
        // Multi-byte characters: 200 of them are 600 bytes.
        let connection = try await AMQPConnection.connect(
            url: TestBroker.url, connectionName: String(repeating: "ç", count: 200))
        let scratch = Scratch()
        do {
            let queue = scratch.queue(String(repeating: "€", count: 70))  // 210 bytes, with the prefix and suffix 233
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let consumer = try await connection.consume(queue: queue)
            #expect(consumer.consumerTag.utf8.count <= 255)
            try await connection.publish(.toQueue(queue, message("long")))
            let delivery = try await Inbox(consumer).next()
            #expect(delivery.consumerTag == consumer.consumerTag)
            try await connection.ack(delivery.tag)
            try await consumer.cancel()
        } catch {
            await connection.close()
            await scratch.cleanUp(url: TestBroker.url)
            throw error
        }
        await connection.close()
        await scratch.cleanUp(url: TestBroker.url)
    }
}
