import BrokerTestSupport
import Foundation
import Testing

// `errors list --limit 0` (or a negative limit) printed nothing and exited 0 with messages in the queue:
// an empty error queue, as far as the operator could tell.
@Suite("saga-endpoint errors list: a limit below 1 is refused", .timeLimit(.minutes(6)))
struct CLIErrorsListLimitTests {
    @Test("--limit 0 and --limit=-5 exit 64 naming the option; --limit 1 lists one message")
    func limitBelowOneIsRefused() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["l-1", "l-2"], in: "transfers.error")

        for limit in ["--limit=0", "--limit=-5"] {
            let run = try await harness.errorsCommand(["list", limit])
            #expect(run.status == 64, "\(limit): \(run)")
            #expect(run.errorOutput.contains("--limit"), "\(limit): \(run)")
            #expect(run.output.isEmpty, "\(limit): \(run)")
        }
        let one = try await harness.errorsCommand(["list", "--limit", "1"])
        #expect(one.status == 0 && one.output.contains("\"l-1\"") && !one.output.contains("\"l-2\""), "\(one)")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        await harness.tearDown()
    }
}
