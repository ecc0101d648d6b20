import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

// `errors replay --all` against a running endpoint whose handler still fails: each replayed message comes
// straight back to the error queue. The replay must stop at what the queue held when it started instead
// of replaying the returning copies for ever.
@Suite("Error queue: replay --all while replayed messages bounce back", .timeLimit(.minutes(6)))
struct ErrorQueueReplayAllBounceTests {
    private static func parked(_ id: String) -> AMQPMessage {
        AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json",
            headers: ["x-original-queue": "transfers", "x-error-reason": "parked"],
            deliveryMode: .persistent, messageId: id, type: "TransferRequested"))
    }

    /// Stands in for an endpoint whose handler fails at once: every message on `transfers` goes back to
    /// transfers.error with the same message id and fresh error headers.
    private static func bounce(_ connection: AMQPConnection, bounced: Tally) async throws -> Task<Void, any Error> {
        let consumer = try await connection.consume(queue: "transfers", prefetch: 50)
        return Task {
            for try await delivery in consumer.deliveries {
                var properties = delivery.properties
                properties.headers = ["x-original-queue": "transfers", "x-error-reason": "bounced"]
                try await connection.publish(.toQueue("transfers.error", AMQPMessage(body: delivery.message.body,
                                                                                     properties: properties)))
                try await connection.ack(delivery.tag)
                bounced.increment()
            }
        }
    }

    @Test("replays each message that was there once, leaves a second copy of an id, and returns")
    func replayAllReturnsWhileMessagesBounce() async throws {
        let harness = try await EndpointHarness.make()
        let ids = (0..<5).map { "b-\($0)" }
        // The last one repeats an id: a run replays an id once and leaves the other copy parked.
        for id in ids + ["b-0"] {
            try await harness.connection.publish(.toQueue("transfers.error", Self.parked(id)))
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 6 }
        let bounced = Tally()
        let endpoint = try await Self.bounce(harness.connection, bounced: bounced)
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")

        let replayed = try await withTimeLimit(.seconds(30), "replayAll") { try await admin.replayAll().replayed }

        #expect(replayed == 5)
        try await waitUntil(timeout: .seconds(20)) { bounced.count == 5 }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 6 }
        #expect(try await admin.count() == 6, "what replay --all reports as left: the second b-0 and the five back")
        endpoint.cancel()
        _ = await endpoint.result
        let left = try await admin.list(limit: 100)
        #expect(left.map(\.messageId).sorted() == (ids + ["b-0"]).sorted())
        #expect(left.filter { $0.reason == "bounced" }.map(\.messageId).sorted() == ids)
        #expect(left.filter { $0.reason == "parked" }.map(\.messageId) == ["b-0"])
        await harness.tearDown()
    }
}
