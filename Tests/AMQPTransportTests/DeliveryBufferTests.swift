// The deliveries sequence without a broker: order, batches, the end, and what an abandoning reader hands
// back.
@testable import AMQPTransport
import Foundation
import Testing

@Suite("AMQPDeliveries (no broker)")
struct DeliveryBufferTests {
    func delivery(_ value: UInt64) -> AMQPDelivery {
        AMQPDelivery(message: AMQPMessage(body: Data()), tag: DeliveryTag(channel: 3, channelEpoch: 1, value: value),
                     consumerTag: "c", queue: "q", exchange: "", routingKey: "q", redelivered: false)
    }

    @Test("deliveries come in order, in batches of what is buffered, then the end")
    func orderAndBatches() async throws {
        let buffer = DeliveryBuffer { _ in Issue.record("nothing should be handed back") }
        for value: UInt64 in 1...5 { #expect(buffer.yield(delivery(value))) }
        var iterator = AMQPDeliveries(buffer: buffer).makeAsyncIterator()
        #expect(try await iterator.next()?.tag.value == 1)
        #expect(try await iterator.next(upTo: 3).map(\.tag.value) == [2, 3, 4])
        #expect(try await iterator.next(upTo: 10).map(\.tag.value) == [5])
        buffer.finish()
        #expect(!buffer.yield(delivery(6)))
        #expect(try await iterator.next() == nil)
        #expect(try await iterator.next(upTo: 5).isEmpty)
    }

    @Test("a waiting reader is woken by the next delivery, and an error ends the sequence once")
    func waitingReaderAndError() async throws {
        let buffer = DeliveryBuffer { _ in }
        let reader = Task {
            var iterator = AMQPDeliveries(buffer: buffer).makeAsyncIterator()
            let first = try await iterator.next()?.tag.value
            do {
                _ = try await iterator.next()
                return (first, "no error")
            } catch {
                return (first, "\(error)")
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        _ = buffer.yield(delivery(7))
        try await Task.sleep(for: .milliseconds(50))
        buffer.finish(throwing: AMQPError(.consumerCancelled, message: "gone"))
        let (first, ending) = try await reader.value
        #expect(first == 7)
        #expect(ending.contains("consumerCancelled"))
    }

    @Test("a reader that leaves hands back exactly the deliveries it never took")
    func abandonment() async throws {
        let handedBack = Box<[UInt64]?>(nil)
        let buffer = DeliveryBuffer { unseen in handedBack.withLock { $0 = unseen.map(\.tag.value) } }
        for value: UInt64 in 1...4 { _ = buffer.yield(delivery(value)) }
        do {
            for try await delivery in AMQPDeliveries(buffer: buffer) where delivery.tag.value == 2 { break }
        }
        #expect(handedBack.withLock { $0 } == [3, 4])
        #expect(!buffer.yield(delivery(5)), "nobody reads any more")
    }

    @Test("a reader cancelled while waiting ends quietly and hands back nothing")
    func cancelledWhileWaiting() async throws {
        let handedBack = Box<[UInt64]?>(nil)
        let buffer = DeliveryBuffer { unseen in handedBack.withLock { $0 = unseen.map(\.tag.value) } }
        let reader = Task {
            var iterator = AMQPDeliveries(buffer: buffer).makeAsyncIterator()
            return try await iterator.next()
        }
        try await Task.sleep(for: .milliseconds(50))
        reader.cancel()
        #expect(try await reader.value == nil)
        #expect(handedBack.withLock { $0 } == [])
    }
}
