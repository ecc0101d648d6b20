import BrokerTestSupport
import Foundation
import Testing

/// How the harness decides that a fixture process started: its log line counts even when the process
/// already ended (the crash tests' fixture can reach its crash point before the first poll).
@Suite("Fixture start detection")
struct FixtureStartTests {
    @Test("a child that logged 'endpoint started' and was killed right after counts as started")
    func startedThenKilled() async throws {
        let child = try ChildProcess(executable: "/bin/sh",
                                     arguments: ["-c", "echo 'endpoint started' >&2; kill -9 $$"])
        _ = try await runOnThread { try child.waitUntilExit(timeout: .seconds(10)) }
        #expect(child.terminatedBySignal)
        #expect(try EndpointHarness.hasStarted(child))
    }

    @Test("a child that ended without the line is a failure that carries its log")
    func endedBeforeStarting() async throws {
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "echo 'cannot open the database' >&2; exit 3"])
        _ = try await runOnThread { try child.waitUntilExit(timeout: .seconds(10)) }
        let failure = #expect(throws: FixtureFailure.self) { try EndpointHarness.hasStarted(child) }
        #expect(failure?.description.contains("cannot open the database") == true)
        #expect(failure?.description.contains("status 3") == true)
    }

    @Test("a running child that has not logged the line yet is not started")
    func stillStarting() async throws {
        // `exec`: with a grandchild (`sleep` under a killed `sh`) the child's exit went unnoticed here
        // until the grandchild ended too.
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exec sleep 30"])
        #expect(try EndpointHarness.hasStarted(child) == false)
        child.kill(signal: SIGKILL)
        _ = try await runOnThread { try child.waitUntilExit(timeout: .seconds(10)) }
    }
}
