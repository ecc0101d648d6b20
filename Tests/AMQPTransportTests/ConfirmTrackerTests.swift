// Publisher-confirm bookkeeping without a broker: acks one by one and with `multiple`, nacks, returns
// matched by content, and a failed channel.
@testable import AMQPTransport
import Foundation
import Testing

@Suite("ConfirmTracker (no broker)")
struct ConfirmTrackerTests {
    func request(_ id: String, key: String = "q", mandatory: Bool = true, tier: String? = nil) -> PublishRequest {
        PublishRequest(exchange: "x", routingKey: key, mandatory: mandatory, message: AMQPMessage(
            body: Data(id.utf8), properties: BasicProperties(headers: tier.map { ["tier": .string($0)] })))
    }

    /// Sends `requests` as one batch, runs `broker` against the tracker, and returns the batch's outcomes.
    func outcomes(_ requests: [PublishRequest], _ broker: (inout ConfirmTracker) -> Void) async -> [PublishOutcome] {
        await withCheckedContinuation { continuation in
            var tracker = ConfirmTracker()
            let batch = tracker.beginBatch(requests, continuation: continuation)
            for index in requests.indices { tracker.sent(batch: batch, index: index) }
            broker(&tracker)
        }
    }

    @Test("acks settle their publishes one by one, out of order, or with multiple")
    func acks() async {
        let result = await outcomes((1...5).map { request("m\($0)") }) { tracker in
            tracker.acknowledged(3, multiple: false)
            tracker.acknowledged(1, multiple: false)
            #expect(tracker.pendingCount == 3)
            tracker.acknowledged(1, multiple: true)  // already settled: nothing happens
            tracker.negativelyAcknowledged(4, multiple: false)
            tracker.acknowledged(5, multiple: true)  // settles 2 and 5
            #expect(tracker.pendingCount == 0)
            #expect(tracker.nextSequence == 6)
        }
        #expect(result == [.confirmed, .confirmed, .confirmed, .nacked, .confirmed])
    }

    @Test("a return goes to the publish with the same content, even when an earlier one waits for its ack")
    func returnsByContent() async {
        let requests = [
            request("same", tier: "gold"), request("same", tier: "silver"), request("same", mandatory: false),
            request("same"), request("other"),
        ]
        // As RabbitMQ sends them: each return, then the ack of its publish (the newest it has handled).
        let result = await outcomes(requests) { tracker in
            tracker.returned(exchange: "x", routingKey: "q", message: requests[1].message, code: 312, text: "NO_ROUTE")
            tracker.acknowledged(2, multiple: false)
            tracker.returned(exchange: "x", routingKey: "q", message: requests[3].message, code: 312, text: "NO_ROUTE")
            tracker.acknowledged(4, multiple: false)
            // No publish has this content: the publish to the same place that the next ack settles gets it.
            tracker.returned(exchange: "x", routingKey: "q", message: AMQPMessage(body: Data("?".utf8)), code: 313, text: "NO_CONSUMERS")
            tracker.acknowledged(1, multiple: false)
            tracker.acknowledged(5, multiple: true)
        }
        let returned = PublishOutcome.returned(replyCode: 312, replyText: "NO_ROUTE")
        #expect(result == [.returned(replyCode: 313, replyText: "NO_CONSUMERS"), returned, .confirmed, returned, .confirmed])
    }

    // Failed before: the return went to the oldest identical publish, here the first, routed and waiting
    // for its queue's confirm, so the second, dropped, was reported confirmed.
    @Test("a return goes to the publish its ack settles, not to an identical earlier one still waiting")
    func returnOfIdenticalPublishes() async {
        let requests = [request("same"), request("same"), request("same")]
        let result = await outcomes(requests) { tracker in
            tracker.returned(exchange: "x", routingKey: "q", message: requests[1].message, code: 312, text: "NO_ROUTE")
            tracker.acknowledged(2, multiple: false)
            tracker.acknowledged(3, multiple: false)
            tracker.acknowledged(1, multiple: false)
        }
        #expect(result == [.confirmed, .returned(replyCode: 312, replyText: "NO_ROUTE"), .confirmed])
    }

    @Test("a return whose ack comes after an ack of earlier publishes waits for it")
    func returnWaitsForItsAck() async {
        let requests = [request("a"), request("same"), request("b"), request("same")]
        let result = await outcomes(requests) { tracker in
            // Publish 4 was returned; RabbitMQ's ack of 1 (with multiple) went out in the same flush, first.
            tracker.returned(exchange: "x", routingKey: "q", message: requests[3].message, code: 312, text: "NO_ROUTE")
            tracker.acknowledged(1, multiple: true)
            tracker.acknowledged(4, multiple: false)
            tracker.acknowledged(3, multiple: true)
        }
        #expect(result == [.confirmed, .confirmed, .confirmed, .returned(replyCode: 312, replyText: "NO_ROUTE")])
    }

    // Failed before: the return went to publish 1, the newest identical one the ack of 2 (with multiple)
    // settles, so 1 (delivered) was reported returned and 4 (dropped) confirmed. RabbitMQ coalesces the
    // confirms its queues sent meanwhile into the flush after the return (rabbit_channel's
    // coalesce_and_send): the acks below the oldest unconfirmed publish (3) go first, as one ack with
    // multiple, then the others one by one, the returned publish last. A multiple ack thus names the
    // returned publish only by its own tag, never by one of the lower publishes it also settles.
    @Test("a return is not given to an identical publish that a coalesced multiple ack settles before it")
    func returnSkipsLowerSlotsOfMultipleAck() async {
        let requests = [request("same"), request("a"), request("b"), request("same")]
        let result = await outcomes(requests) { tracker in
            tracker.returned(exchange: "x", routingKey: "q", message: requests[3].message, code: 312, text: "NO_ROUTE")
            tracker.acknowledged(2, multiple: true)
            tracker.acknowledged(4, multiple: false)
            tracker.acknowledged(3, multiple: false)
        }
        #expect(result == [.confirmed, .confirmed, .confirmed, .returned(replyCode: 312, replyText: "NO_ROUTE")])
    }

    @Test("failAll fails every unconfirmed publish and restarts the numbering")
    func failAll() async {
        let error = AMQPError(.connectionLost, message: "gone")
        let result = await outcomes((1...3).map { request("m\($0)") }) { tracker in
            tracker.acknowledged(1, multiple: false)
            tracker.failAll(error)
            #expect(tracker.pendingCount == 0)
            #expect(tracker.nextSequence == 1)
            tracker.acknowledged(2, multiple: true)  // from the old channel: ignored
        }
        #expect(result == [.confirmed, .failed(error), .failed(error)])
    }

    @Test("thousands of publishes acked in scattered order all settle exactly once")
    func manyPublishes() async {
        let count = 10_000
        let result = await outcomes((0..<count).map { request("m\($0)") }) { tracker in
            var tags = Array(1...UInt64(count))
            var generator = SystemRandomNumberGenerator()
            tags.shuffle(using: &generator)
            for tag in tags.prefix(count / 2) { tracker.acknowledged(tag, multiple: false) }
            tracker.acknowledged(UInt64(count), multiple: true)
            #expect(tracker.pendingCount == 0)
        }
        #expect(result.count == count)
        #expect(result.allSatisfy { $0 == .confirmed })
    }
}
