import AMQPTransport
import Foundation
import Testing

let brokerURL = ProcessInfo.processInfo.environment["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"

func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

@Suite("Publish and consume against the real broker")
struct PublishConsumeTests {
    @Test("10,000 confirmed publishes are all confirmed and all arrive")
    func tenThousandConfirmedPublishes() async throws {
        let connection = try await AMQPConnection.connect(url: brokerURL, connectionName: "test-confirms")
        defer { Task { await connection.close() } }
        let queue = uniqueName("confirms")
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: false, autoDelete: false))
        let requests = (0..<10_000).map { i in
            PublishRequest.toQueue(queue, AMQPMessage(body: Data("m\(i)".utf8), properties: BasicProperties(messageId: "m\(i)")))
        }
        var outcomes: [PublishOutcome] = []
        for chunk in stride(from: 0, to: requests.count, by: 500) {
            outcomes += await connection.publish(Array(requests[chunk..<min(chunk + 500, requests.count)]))
        }
        #expect(outcomes.count == 10_000)
        #expect(outcomes.allSatisfy { $0 == .confirmed })
        let state = try await connection.checkQueue(queue)
        #expect(state.messageCount == 10_000)

        let consumer = try await connection.consume(queue: queue, prefetch: 500)
        var seen = Set<String>()
        for try await delivery in consumer.deliveries {
            seen.insert(delivery.properties.messageId ?? "")
            try await connection.ack(delivery.tag)
            if seen.count == 10_000 { break }
        }
        #expect(seen.count == 10_000)
        try await connection.deleteQueue(queue)
    }
}
