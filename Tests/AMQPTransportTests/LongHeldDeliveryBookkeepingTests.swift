// The endpoint keeps a delivery unacknowledged, to process it again, for as long as its error-queue copy
// is refused (a full error queue): hours, with the same delivery tag, while every later delivery of its
// channel is acknowledged one by one (no `multiple` ack may cover the kept one). The transport's record of
// what is unsettled on the channel (`UnsettledDeliveries`) kept one set entry per delivery acknowledged
// above the kept one, for as long as it was kept: memory that grew with the traffic, without bound.
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("A delivery kept unacknowledged while the ones after it are acknowledged")
struct LongHeldDeliveryBookkeepingTests {
    @Test("the channel's record of settled deliveries stays small, and the channel still closes once it is settled")
    func bookkeepingStaysSmall() async throws {
        try await withConnection("long-held") { connection, scratch in
            let queue = scratch.queue("long-held")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let total = 600
            _ = await connection.publish((0..<total).map { .toQueue(queue, message("m\($0)")) })
            let consumer = try await connection.consume(queue: queue, prefetch: 50)
            let inbox = Inbox(consumer)
            let kept = try await inbox.next()
            // Acknowledged one at a time, as the endpoint does while it keeps `kept`.
            for _ in 1..<total {
                let delivery = try await inbox.next(timeout: .seconds(30))
                try await connection.ack(delivery.tag)
            }
            let runs = await connection.consumers[consumer.channel]?.unsettled.runsSettledOutOfOrder ?? -1
            #expect(runs == 1, "entries kept for the \(total - 1) deliveries acknowledged above the kept one: \(runs)")

            try await consumer.cancel()
            #expect(await connection.openChannels[consumer.channel] != nil, "closed with a delivery unsettled")
            try await connection.ack(kept.tag)
            try await waitUntil(timeout: .seconds(10), message: "the channel closed once everything was settled") {
                await connection.openChannels[consumer.channel] == nil
            }
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }
}
