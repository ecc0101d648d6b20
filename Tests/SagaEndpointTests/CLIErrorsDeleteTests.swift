import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

// With 4 messages to replay and 1 to discard, the operator had to replay the 4 before purging (purging
// first lost them): nothing removed one message. `errors delete ID` does, and leaves the others in place.
@Suite("saga-endpoint errors delete: one message out, the others stay", .timeLimit(.minutes(6)))
struct CLIErrorsDeleteTests {
    private func left(_ harness: EndpointHarness, _ queue: String = "transfers.error") async throws -> [String] {
        try await ErrorQueueAdmin(connection: harness.connection, errorQueue: queue).list().map(\.messageId)
    }

    @Test("deletes one of several; the others stay in the queue, in their order")
    func deletesOneOfSeveral() async throws {
        let harness = try await EndpointHarness.make()
        let ids = (0..<20).map { "d-\($0)" }
        // 20: past the first window of a pass (8), so the kept messages come back from two channels.
        try await harness.park(ids)

        let run = try await harness.errorsCommand(["delete", "d-15"])

        #expect(run.status == 0, "\(run)")
        #expect(run.output.contains("deleted 1 message(s) with id d-15 from transfers.error; 19 in it now"), "\(run)")
        #expect(run.errorOutput.isEmpty, "\(run)")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 19 }
        #expect(try await left(harness) == ids.filter { $0 != "d-15" })
        await harness.tearDown()
    }

    @Test("an id that is not there: exit status 1 naming it and the queue; nothing removed")
    func idNotPresent() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["p-0", "p-1", "p-2"])

        let run = try await harness.errorsCommand(["delete", "missing-1"])

        #expect(run.status == 1, "\(run)")
        #expect(run.errorOutput.contains("no message missing-1 in transfers.error"), "\(run)")
        #expect(!run.output.contains("deleted"), "\(run)")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 3 }
        #expect(try await left(harness) == ["p-0", "p-1", "p-2"])

        let empty = try await harness.errorsCommand(["delete", ""])
        #expect(empty.status == 64 && empty.errorOutput.contains("must not be empty"), "\(empty)")
        await harness.tearDown()
    }

    @Test("two copies under one id: both go (unlike replay, which takes the first), the rest stays")
    func twoCopiesOfOneId() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["dup-1", "x-1", "dup-1", "x-2"])

        let run = try await harness.errorsCommand(["delete", "dup-1"])

        #expect(run.status == 0, "\(run)")
        #expect(run.output.contains("deleted 2 message(s) with id dup-1 from transfers.error; 2 in it now"), "\(run)")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        #expect(try await left(harness) == ["x-1", "x-2"])
        // So the next replay --all cannot send the discarded message back.
        let replay = try await harness.errorsCommand(["replay", "--all"])
        #expect(replay.status == 0 && replay.output.contains("replayed 2 message(s)"), "\(replay)")
        await harness.tearDown()
    }

    @Test("refuses an input queue without --any-queue; with it, deletes there too")
    func nonErrorQueueGuard() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["live-1", "live-2"], in: "bank")

        let refused = try await harness.errorsCommand(["delete", "live-1", "--queue", "bank"])
        #expect(refused.status == 64, "\(refused)")
        #expect(refused.errorOutput.contains("'bank' is not an error queue"), "\(refused)")
        #expect(refused.errorOutput.contains("--any-queue"), "\(refused)")
        #expect(try await harness.depth("bank") == 2, "nothing read or deleted")

        let allowed = try await harness.errorsCommand(["delete", "live-1", "--queue", "bank", "--any-queue"])
        #expect(allowed.status == 0 && allowed.output.contains("deleted 1 message(s) with id live-1 from bank"),
                "\(allowed)")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("bank") == 1 }
        #expect(try await left(harness, "bank") == ["live-2"])

        let gone = try await harness.errorsCommand(["delete", "x", "--queue", "nowhere.error"])
        #expect(gone.status == 1 && gone.errorOutput.contains("error queue 'nowhere.error' does not exist"), "\(gone)")
        await harness.tearDown()
    }

    @Test("4 to replay and 1 that cannot be: delete it, replay --all the rest, nothing skipped")
    func deleteAmongUnreplayableMessages() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.parkOne("ok-1", originalQueue: "transfers")
        try await harness.parkOne("no-origin-1", originalQueue: nil)
        try await harness.parkOne("gone-1", originalQueue: "gone-queue")
        try await harness.parkOne("ok-2", originalQueue: "transfers")
        try await harness.parkOne("ok-3", originalQueue: "transfers")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 5 }

        // A fixable one first: the unreplayable ones are only read and handed back, like any other.
        let first = try await harness.errorsCommand(["delete", "ok-3"])
        #expect(first.status == 0, "\(first)")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 4 }
        #expect(try await left(harness) == ["ok-1", "no-origin-1", "gone-1", "ok-2"])

        for id in ["no-origin-1", "gone-1"] {
            let run = try await harness.errorsCommand(["delete", id])
            #expect(run.status == 0 && run.output.contains("deleted 1 message(s) with id \(id)"), "\(run)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        #expect(try await left(harness) == ["ok-1", "ok-2"])

        let replay = try await harness.errorsCommand(["replay", "--all"])
        #expect(replay.status == 0, "\(replay)")
        #expect(replay.output.contains("replayed 2 message(s) from transfers.error, skipped 0"), "\(replay)")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers") == 2 }
        await harness.tearDown()
    }
}
