import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

// A message that cannot be replayed (no x-original-queue header, or an original queue that no longer
// exists) used to end `errors replay --all` at once, without a count: with such a message at the head of
// the queue, no `--all` ever replayed anything. It now stays in the queue, is named on stderr with the
// reason, and the pass goes on with the rest.
@Suite("Error queue: replay --all skips what it cannot replay", .timeLimit(.minutes(6)))
struct ErrorQueueReplaySkipTests {
    @Test("replay --all replays the others, names each skipped message, keeps it, and exits non-zero")
    func replayAllSkipsAndGoesOn() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.parkOne("no-origin-1", originalQueue: nil)
        try await harness.parkOne("ok-1", originalQueue: "transfers")
        try await harness.parkOne("gone-1", originalQueue: "gone-queue")
        try await harness.parkOne("ok-2", originalQueue: "transfers")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 4 }

        let run = try await harness.errorsCommand(["replay", "--all"])

        #expect(run.status == 2, "\(run)")
        #expect(run.output.contains("replayed 2 message(s) from transfers.error"), "\(run)")
        #expect(run.output.contains("skipped 2"), "\(run)")
        #expect(run.output.contains("2 in it now"), "\(run)")
        let skipLines = run.errorOutput.split(separator: "\n").filter { $0.hasPrefix("skipped ") }
        #expect(skipLines.count == 2, "\(run)")
        #expect(skipLines.contains { $0.contains("no-origin-1") && $0.contains("no x-original-queue header") }, "\(run)")
        #expect(skipLines.contains { $0.contains("gone-1") && $0.contains("gone-queue") }, "\(run)")
        #expect(!run.errorOutput.contains("invalidConfiguration"), "\(run)")

        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers") == 2 }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        let left = try await ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error").list()
        #expect(left.map(\.messageId) == ["no-origin-1", "gone-1"])
        await harness.tearDown()
    }

    // Any publisher chooses the id of a message that ends in the error queue: a line break in it forged a
    // line of the report, an escape sequence acted on the operator's terminal.
    @Test("replay --all names a skipped message whose id holds control characters on one visible line")
    func skippedIdWithControlCharacters() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.parkOne("evil\u{1B}]0;pwned\u{07}\u{1B}[2J\nskipped forged: fake", originalQueue: nil)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 1 }

        let run = try await harness.errorsCommand(["replay", "--all"])

        #expect(run.status == 2, "\(run)")
        #expect(!run.errorOutput.unicodeScalars.contains("\u{1B}") && !run.errorOutput.unicodeScalars.contains("\u{07}"),
                "\(run)")
        let skipLines = run.errorOutput.split(separator: "\n").filter { $0.hasPrefix("skipped ") }
        #expect(skipLines.count == 1, "\(run)")
        #expect(skipLines.first?.hasPrefix(#"skipped evil\u{1B}]0;pwned\u{7}\u{1B}[2J\nskipped forged: fake: it has no"#) == true,
                "\(run)")
        await harness.tearDown()
    }

    @Test("replay ID of a message without x-original-queue fails naming it and the queue, and leaves it")
    func replayOneWithoutOrigin() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.parkOne("no-origin-1", originalQueue: nil)
        try await harness.parkOne("gone-1", originalQueue: "gone-queue")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }

        let noOrigin = try await harness.errorsCommand(["replay", "no-origin-1"])
        #expect(noOrigin.status == 1, "\(noOrigin)")
        #expect(noOrigin.errorOutput.contains(
            "message no-origin-1 in transfers.error cannot be replayed: it has no x-original-queue header"), "\(noOrigin)")
        #expect(!noOrigin.errorOutput.contains("invalidConfiguration"), "\(noOrigin)")

        let gone = try await harness.errorsCommand(["replay", "gone-1"])
        #expect(gone.status == 1, "\(gone)")
        #expect(gone.errorOutput.contains("message gone-1 in transfers.error cannot be replayed"), "\(gone)")
        #expect(gone.errorOutput.contains("gone-queue"), "\(gone)")

        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        await harness.tearDown()
    }

    @Test("replayAll reports each skipped message with a typed reason and replays the rest")
    func replayAllOutcome() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.parkOne("no-origin-1", originalQueue: nil)
        try await harness.parkOne("ok-1", originalQueue: "transfers")
        try await harness.parkOne("gone-1", originalQueue: "gone-queue")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 3 }
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")

        var heard: [String] = []
        let outcome = try await admin.replayAll { heard.append($0.messageId) }

        #expect(outcome.replayed == 1)
        #expect(heard == ["no-origin-1", "gone-1"])
        let skipped = outcome.skipped
        try #require(skipped.count == 2)
        #expect(skipped[0] == ErrorQueueReplayFailure(messageId: "no-origin-1", errorQueue: "transfers.error",
                                                      originalQueue: nil, reason: .noOriginalQueue))
        #expect(skipped[1].messageId == "gone-1" && skipped[1].originalQueue == "gone-queue")
        guard case .refused(let error) = skipped[1].reason else {
            Issue.record("gone-1: \(skipped[1])")
            return
        }
        #expect(error.code == .unroutable)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        await harness.tearDown()
    }
}
