// basic.qos: a consumer never holds more unacknowledged deliveries than its prefetch.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Prefetch")
struct PrefetchTests {
    @Test("with prefetch N and no acks exactly N deliveries arrive; each ack lets exactly one more in", arguments: [1, 5])
    func prefetchIsHonoured(prefetch: Int) async throws {
        try await withConnection("prefetch") { connection, scratch in
            let queue = scratch.queue("prefetch")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let outcomes = await connection.publish((0..<20).map { .toQueue(queue, message("p\($0)")) })
            #expect(outcomes.allSatisfy { $0.isConfirmed })

            let consumer = try await connection.consume(queue: queue, prefetch: UInt16(prefetch))
            let inbox = Inbox(consumer)
            let held = try await inbox.take(prefetch)
            try await Task.sleep(for: .milliseconds(500))  // time for any excess delivery to show up
            #expect(inbox.count == prefetch)

            try await connection.ack(held[0].tag)
            _ = try await inbox.next()
            try await Task.sleep(for: .milliseconds(500))
            #expect(inbox.count == prefetch + 1)

            // Acking with multiple frees every slot at once.
            let all = inbox.all
            try await connection.ack(all.last!.tag, multiple: true)
            _ = try await inbox.take(prefetch)
            try await Task.sleep(for: .milliseconds(300))
            #expect(inbox.count == 2 * prefetch + 1)

            try await consumer.cancel()
            let remaining = inbox.all
            try await connection.ack(remaining.last!.tag, multiple: true)
        }
    }
}
