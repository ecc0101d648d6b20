import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaStore
import Sagas
import Testing

/// A stateless handler that fails its first call and succeeds after.
struct FlakyOnce: Message {
    static let messageType = "test.FlakyOnce"
    var note: String
}

// A message that crash-looped the endpoint goes to the error queue with its delivery count past
// maxDeliveries, and that count stays in SQLite until housekeeping removes it with the inbox (7 days).
// Replayed after the crash was fixed, the message ran once; but its first redelivery (an immediate retry,
// a batch requeued while the database was busy, an outgoing message not confirmed) went on counting
// from there, and it was back in the error queue as a PoisonMessage without running again.
@Suite("Error queue: replaying a former poison message", .timeLimit(.minutes(6)))
struct ErrorQueueReplayPoisonTests {
    @Test("a replayed message starts its delivery count afresh: a retry is a retry, not a poison message")
    func replayStartsTheCountAfresh() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("flaky")
        // What the crash loop left behind: a count past maxDeliveries (10).
        _ = try await harness.withStore("flaky") { try $0.countDeliveries(messageIds: ["p-1"], at: Date(), first: 11) }
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(FlakyOnce.self) { _, _ in
            calls.increment()
            if calls.count == 1 { throw Explode.Failure() }
        }
        let endpoint = harness.startEndpoint(registry, queues: ["flaky"], database: "flaky")

        // The error copy as `errors replay` publishes it: same message id, x-replays.
        try await harness.sendRaw(try MessageCoding.encode(FlakyOnce(note: "again")), properties: BasicProperties(
            contentType: "application/json", headers: ["x-replays": "1"], deliveryMode: .persistent, messageId: "p-1",
            type: FlakyOnce.messageType), to: "flaky")

        // Before: one call, then "PoisonMessage: delivered 12 times …" in flaky.error.
        try await waitUntil(timeout: .seconds(30)) {
            if calls.count >= 2 { return true }
            return try await harness.depth("flaky.error") > 0
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("flaky") == 0 }
        #expect(calls.count == 2)
        #expect(try await harness.depth("flaky.error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
