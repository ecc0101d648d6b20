import BrokerTestSupport
import Foundation
import Testing

/// What `errors` says when its error queue does not exist.
@Suite("saga-endpoint errors: a missing error queue", .timeLimit(.minutes(4)))
struct CLIErrorsMissingQueueTests {
    // Found by a user trying the CLI on their own endpoint's vhost: `errors list` without --queue said only
    // "error queue 'transfers.error' does not exist", a queue they never named (it is the reference app's,
    // the default), and named no vhost to check.
    @Test("it names the vhost, and says the default queue is the reference app's and to pass --queue")
    func missingQueueIsExplained() async throws {
        let harness = try await EndpointHarness.make()
        _ = try await harness.connection.deleteQueue("transfers.error")

        let defaulted = try await harness.errorsCommand(["list"])
        #expect(defaulted.status == 1, "\(defaulted)")
        #expect(defaulted.errorOutput.contains("error queue 'transfers.error' does not exist in vhost '\(harness.vhost)'"),
                "\(defaulted)")
        #expect(defaulted.errorOutput.contains("the default of --queue"), "\(defaulted)")

        let named = try await harness.errorsCommand(["list", "--queue", "orders.error"])
        #expect(named.status == 1, "\(named)")
        #expect(named.errorOutput.contains("error queue 'orders.error' does not exist in vhost '\(harness.vhost)'"),
                "\(named)")
        #expect(!named.errorOutput.contains("the default of --queue"), "\(named)")
        await harness.tearDown()
    }
}
