import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

// A message another consumer holds unacknowledged is neither counted as ready by the passive declare nor
// delivered to a search, so `show` and `replay` used to report "no message X" although it was there.
@Suite("Error queue: messages held by another consumer", .timeLimit(.minutes(6)))
struct ErrorQueueHeldMessagesTests {
    /// Parks h-0…h-3 and attaches a consumer that takes the first three and never acks them.
    private func holdThree(_ harness: EndpointHarness) async throws -> AMQPConsumer {
        try await harness.park(["h-0", "h-1", "h-2", "h-3"])
        let holder = try await harness.connection.consume(queue: "transfers.error", prefetch: 3)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 1 }
        return holder
    }

    @Test("show and replay of a held message fail saying other consumers may hold it, not 'no message'")
    func showAndReplayOfAHeldMessage() async throws {
        let harness = try await EndpointHarness.make()
        let holder = try await holdThree(harness)

        for command in [["show", "h-1"], ["replay", "h-1"]] {
            let run = try await harness.errorsCommand(command)
            #expect(run.status == 1, "\(command): \(run)")
            #expect(!run.errorOutput.contains("no message h-1"), "\(command): \(run)")
            #expect(run.errorOutput.contains("1 other consumer"), "\(command): \(run)")
            #expect(run.errorOutput.contains("try again once"), "\(command): \(run)")
        }
        // The ready one is still found.
        let shown = try await harness.errorsCommand(["show", "h-3"])
        #expect(shown.status == 0, "\(shown)")
        #expect(shown.output.contains("\"h-3\""), "\(shown)")

        try await holder.cancel()
        await harness.tearDown()
    }

    @Test("list says on stderr that other consumers hold messages it does not list")
    func listNamesTheHolders() async throws {
        let harness = try await EndpointHarness.make()
        let holder = try await holdThree(harness)

        let run = try await harness.errorsCommand(["list"])

        #expect(run.status == 0, "\(run)")
        #expect(run.output.split(separator: "\n").count == 1 && run.output.contains("\"h-3\""), "\(run)")
        #expect(run.errorOutput.contains("1 other consumer"), "\(run)")
        #expect(run.errorOutput.contains("not listed"), "\(run)")
        try await holder.cancel()
        await harness.tearDown()
    }

    // Before: "replayed 1 message(s) …; 0 in it now", exit 0, and not a word about the three held ones,
    // which come back to the error queue once their consumer lets go.
    @Test("replay --all says on stderr that other consumers hold messages it did not replay")
    func replayAllNamesTheHolders() async throws {
        let harness = try await EndpointHarness.make()
        let holder = try await holdThree(harness)

        let run = try await harness.errorsCommand(["replay", "--all"])

        #expect(run.status == 0, "\(run)")
        #expect(run.output.contains("replayed 1 message(s)"), "\(run)")
        #expect(run.errorOutput.contains("1 other consumer"), "\(run)")
        #expect(run.errorOutput.contains("not replayed"), "\(run)")
        try await holder.cancel()
        await harness.tearDown()
    }

    @Test("the library: show throws ErrorQueueScanIncomplete with the consumer count; browse counts them")
    func libraryReportsTheHolders() async throws {
        let harness = try await EndpointHarness.make()
        let holder = try await holdThree(harness)
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")

        let error = try await #require(throws: ErrorQueueScanIncomplete.self) {
            try await admin.show(messageId: "h-1")
        }
        #expect(error.otherConsumers == 1 && error.scanned == 1 && error.queued == 1)
        #expect(try await admin.show(messageId: "h-3")?.messageId == "h-3")
        let listing = try await admin.browse()
        #expect(listing.entries.map(\.messageId) == ["h-3"] && listing.otherConsumers == 1)

        try await holder.cancel()
        await harness.tearDown()
    }
}
