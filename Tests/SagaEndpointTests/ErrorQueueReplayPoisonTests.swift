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
        // What the crash loop left behind: a count past maxDeliveries (10). Before: one call, then
        // "PoisonMessage: delivered 12 times …" in flaky.error.
        try await replayFailingOnce("p-1") { store in
            _ = try store.countDeliveries(messageIds: ["p-1"], at: Date(), first: 11)
        }
    }

    // Failed before: a failure count can outlive its message's error copy (kept until a copy is confirmed;
    // a confirm lost with the connection leaves it until the original comes back). A replay that came first
    // failed once and went straight back to the error queue with its attempts used up, without a retry.
    @Test("a replayed message starts its failure count afresh: its first failure is retried")
    func replayStartsTheFailureCountAfresh() async throws {
        // A failure count past the retries (1 + 3 immediate), left behind by the first round.
        try await replayFailingOnce("f-1") { store in
            for _ in 0..<4 { try store.recordFailure(messageId: "f-1", error: "exploded on purpose", at: Date()) }
        }
    }

    /// Leaves what `leftBehind` writes in a fresh store, replays `messageId` as `errors replay` publishes it
    /// (same message id, `x-replays`) to a handler that fails its first call, and expects the retry to
    /// succeed: two calls, nothing in the error queue, no failure count left.
    private func replayFailingOnce(_ messageId: String,
                                   leftBehind: @escaping @Sendable (SagaStore) throws -> Void) async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("flaky")
        try await harness.withStore("flaky", leftBehind)
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(FlakyOnce.self) { _, _ in
            calls.increment()
            if calls.count == 1 { throw Explode.Failure() }
        }
        let endpoint = harness.startEndpoint(registry, queues: ["flaky"], database: "flaky") { $0.delayedRetries = [] }
        try await harness.sendRaw(try MessageCoding.encode(FlakyOnce(note: "again")), properties: BasicProperties(
            contentType: "application/json", headers: ["x-replays": "1"], deliveryMode: .persistent, messageId: messageId,
            type: FlakyOnce.messageType), to: "flaky")

        try await waitUntil(timeout: .seconds(30)) {
            if calls.count >= 2 { return true }
            return try await harness.depth("flaky.error") > 0
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("flaky") == 0 }
        // The queue is empty once the retry is delivered; its count is cleared when its batch commits, a
        // moment later (a full run on a loaded machine checked in between).
        try await waitUntil(timeout: .seconds(20), message: "the failure count was not cleared") {
            try await harness.rowCount("flaky", "failures") == 0
        }
        #expect(calls.count == 2)
        #expect(try await harness.depth("flaky.error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    // Failed before: each replayed message's count was cleared by a statement of its own, committed by
    // itself before the batch: one more commit (a WAL sync) per message on the one SQLite writer, so a
    // `replay --all` of former retries (they all have a count) wrote a WAL frame per message.
    @Test("the counts of a batch of replayed messages are cleared in one commit, not one per message")
    func replayedCountsAreClearedTogether() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("flaky")
        let ids = (0..<200).map { "r-\($0)" }
        // Counts left by their retries before they went to the error queue.
        _ = try await harness.withStore("replays") { try $0.countDeliveries(messageIds: ids, at: Date(), first: 2) }
        for id in ids {
            try await harness.sendRaw(try MessageCoding.encode(FlakyOnce(note: id)), properties: BasicProperties(
                contentType: "application/json", headers: ["x-replays": "1"], deliveryMode: .persistent, messageId: id,
                type: FlakyOnce.messageType), to: "flaky")
        }
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(FlakyOnce.self) { _, _ in calls.increment() }
        let endpoint = harness.startEndpoint(registry, queues: ["flaky"], database: "replays")
        try await waitUntil(timeout: .seconds(30)) { calls.count >= ids.count }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("flaky") == 0 }

        // The WAL is not checkpointed before 10,000 pages: its size counts every page committed since the
        // endpoint opened the file. Two batches of 100 take a few pages each.
        var info = stat()
        #expect(stat(harness.databasePath("replays") + "-wal", &info) == 0)
        let frames = Int(info.st_size) / (4096 + 24)
        #expect(frames < ids.count / 2, "\(frames) WAL frames for \(ids.count) replayed messages")
        #expect(try await harness.withStore("replays") { store in
            try store.connection.query("SELECT count(*) FROM deliveries").first?[0].integerValue } == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
