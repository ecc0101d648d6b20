import BrokerTestSupport
import Foundation
import Testing

/// What a command prints on stdout is its result (`errors list`, `sagas list`, `topology export`): when it
/// cannot be written (a full disk under `> listing.json`), the command must fail.
@Suite("saga-endpoint standard output", .timeLimit(.minutes(4)))
struct CLIStandardOutputTests {
    /// Runs the executable with `arguments`, its stdout sent where `redirect` says, its stderr captured.
    func run(_ arguments: [String], stdout redirect: String) async throws -> (status: Int32, bySignal: Bool, error: String) {
        let process = try ChildProcess(executable: "/bin/sh", arguments: [
            "-c", "exec \"$0\" \"$@\" \(redirect)", CLIProcessTests.executablePath] + arguments)
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        return (status, process.terminatedBySignal, process.errorOutput())
    }

    // Failed before: `topology export > /dev/full` died of a trap (Foundation's FileHandle.write traps on a
    // failed write), and the commands that print with `print` exited 0 with their output lost, so
    // `errors list > listing.json && …` went on with an empty listing as if the queue were empty.
    @Test("stdout that cannot be written: exit status 1 saying so, not a trap or a silent 0")
    func unwritableStdout() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["out-1", "out-2"])
        let commands = [
            ["topology", "export", "--amqp-url", harness.url],
            ["errors", "list", "--amqp-url", harness.url, "--log-level", "warning"],
        ]
        for arguments in commands {
            for redirect in [">/dev/full"] {
                let outcome = try await run(arguments, stdout: redirect)
                let name = "\(arguments.prefix(2).joined(separator: " ")) \(redirect)"
                #expect(outcome.status == 1 && !outcome.bySignal, "\(name): status \(outcome.status)\n\(outcome.error)")
                #expect(outcome.error.contains("cannot write to standard output"), "\(name): \(outcome.error)")
            }
        }
        // Listing them did not take them.
        #expect(try await harness.depth("transfers.error") == 2)
        await harness.tearDown()
    }
}
