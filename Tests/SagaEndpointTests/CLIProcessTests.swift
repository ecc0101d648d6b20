import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

/// The `saga-endpoint` executable as operators run it.
@Suite("saga-endpoint processes", .timeLimit(.minutes(2)))
struct CLIProcessTests {
    static var executablePath: String {
        EndpointHarness.fixturePath.replacingOccurrences(of: "saga-endpoint-fixture", with: "saga-endpoint")
    }

    // Regression: a service that never ended on graceful shutdown (the second-signal watcher) held the
    // service group open, so `run` did not exit on SIGTERM and `demo` had to kill it.
    @Test("run exits 0 soon after SIGTERM")
    func runStopsOnSIGTERM() async throws {
        let harness = try await EndpointHarness.make()
        let process = try ChildProcess(executable: Self.executablePath, arguments: [
            "run", "--amqp-url", harness.url, "--database", harness.databasePath("cli"), "--no-declare-topology",
            "--log-level", "warning"])
        try await waitUntil(timeout: .seconds(30), message: "run consumes its queues") {
            try await harness.connection.checkQueue("transfers").consumerCount == 1
        }
        process.kill(signal: SIGTERM)
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(15)) }
        #expect(status == 0, "\(process.errorOutput().suffix(2000))")
        #expect(!process.terminatedBySignal)
        await harness.tearDown()
    }
}
