import BrokerTestSupport
import Foundation
import Testing

// `errors list` stopped at --limit (100 by default) without a word: with more messages than that it
// printed 100 lines and exited 0, and the operator took them for the whole queue.
@Suite("saga-endpoint errors list: a list cut by --limit says so on stderr", .timeLimit(.minutes(6)))
struct CLIErrorsListCutNoteTests {
    @Test("101 messages: the default limit lists 100 and notes the other one; stdout has only the entries")
    func theDefaultLimitCutIsNoted() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park((1...101).map { "cut-\($0)" }, in: "transfers.error")

        let list = try await harness.errorsCommand(["list"])
        #expect(list.status == 0, "\(list)")
        #expect(list.output.split(separator: "\n").count == 100, "\(list)")
        #expect(list.errorOutput.contains(
            "listed the first 100 of 101 messages in transfers.error (use --limit N for more)"), "\(list)")
        #expect(!list.output.contains("listed the first"), "scripts parse stdout: \(list)")

        // A limit that takes them all, or more, cuts nothing and says nothing.
        for limit in ["101", "500"] {
            let all = try await harness.errorsCommand(["list", "--limit", limit])
            #expect(all.status == 0 && all.output.split(separator: "\n").count == 101, "\(all)")
            #expect(!all.errorOutput.contains("listed the first"), "--limit \(limit): \(all)")
        }
        let two = try await harness.errorsCommand(["list", "--limit", "2"])
        #expect(two.errorOutput.contains("listed the first 2 of 101 messages in transfers.error"), "\(two)")
        await harness.tearDown()
    }
}
