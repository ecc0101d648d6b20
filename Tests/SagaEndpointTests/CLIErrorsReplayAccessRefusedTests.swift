import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

/// A user who may read the error queue but not write to the default exchange (where a replay publishes):
/// the broker closes the channel with 403 ACCESS_REFUSED. `errors replay --all` stopped with exit status 1
/// and the broker's raw error, and `errors replay ID` likewise, without saying that the message is still in
/// the error queue nor what permission is missing. Now the message is reported as skipped with that reason,
/// and `--all` stops there (every other replay would be refused alike) saying the others were not tried.
@Suite("errors replay by a user who may not publish", .timeLimit(.minutes(4)))
struct CLIErrorsReplayAccessRefusedTests {
    /// A user with read permission only (no configure, no write) on the harness's vhost; deleted by `body`'s end.
    func withReadOnlyUser(_ harness: EndpointHarness, _ body: (String) async throws -> Void) async throws {
        let user = TestBroker.uniqueName("replayer")
        let vhost = harness.vhost
        _ = try await runOnThread {
            try TestBroker.rabbitmqctl(["add_user", user, "replayer-secret"])
            return try TestBroker.rabbitmqctl(["set_permissions", "-p", vhost, user, "", "", ".*"])
        }
        var components = URLComponents(string: harness.url)!
        components.user = user
        components.password = "replayer-secret"
        do {
            try await body(components.string!)
        } catch {
            _ = try? await runOnThread { try TestBroker.rabbitmqctl(["delete_user", user]) }
            throw error
        }
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["delete_user", user]) }
    }

    @Test("replay --all names the refused message as skipped, says why and that the others were not tried; nothing moves")
    func replayAllRefused() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.parkOne("refused-1", originalQueue: "transfers")
        try await harness.parkOne("refused-2", originalQueue: "transfers")
        try await harness.parkOne("refused-3", originalQueue: "transfers")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 3 }

        try await withReadOnlyUser(harness) { url in
            let run = try await harness.errorsCommand(["replay", "--all"], url: url)
            #expect(run.status == 2, "\(run)")
            let skipLines = run.errorOutput.split(separator: "\n").filter { $0.hasPrefix("skipped ") }
            #expect(skipLines.count == 1, "\(run)")
            #expect(skipLines.first?.contains("skipped refused-1: ") == true, "\(run)")
            #expect(skipLines.first?.contains("may not publish to the default exchange") == true, "\(run)")
            #expect(skipLines.first?.contains("ACCESS_REFUSED") == true, "\(run)")
            #expect(skipLines.first?.hasSuffix("it stays in transfers.error") == true, "\(run)")
            #expect(run.output.contains("replayed 0 message(s) from transfers.error, skipped 1"), "\(run)")
            #expect(run.output.contains("2 not tried"), "\(run)")
            #expect(run.output.contains("3 in it now"), "\(run)")
            #expect(!run.errorOutput.contains("Error: AMQP"), "\(run)")

            let one = try await harness.errorsCommand(["replay", "refused-2"], url: url)
            #expect(one.status == 1, "\(one)")
            #expect(one.errorOutput.contains("message refused-2 in transfers.error cannot be replayed: "), "\(one)")
            #expect(one.errorOutput.contains("may not publish to the default exchange"), "\(one)")
            #expect(one.errorOutput.contains("it stays in transfers.error"), "\(one)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 3 }
        #expect(try await harness.depth("transfers") == 0)
        let left = try await ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error").list()
        #expect(left.map(\.messageId) == ["refused-1", "refused-2", "refused-3"])
        await harness.tearDown()
    }
}
