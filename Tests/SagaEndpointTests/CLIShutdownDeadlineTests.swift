// `run`'s graceful shutdown has a time limit (`--shutdown-timeout`, 30 s by default); past it, what still
// runs is cancelled, and the log says so.
import BrokerTestSupport
import Foundation
import Testing

@Suite("saga-endpoint run: a graceful shutdown past its limit", .timeLimit(.minutes(6)))
struct CLIShutdownDeadlineTests {
    // Failed before: there was no --shutdown-timeout, and a shutdown cut short at the (fixed) 30 s limit
    // left nothing in the log above debug.
    @Test("a broker that stops answering: --shutdown-timeout 2 cancels after 2 s, logs a warning naming it, exits 0")
    func aShutdownPastTheLimitIsLogged() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(name: "deadline-\(UInt16.random(in: 1000...9999))") }
        defer { node.shutdown() }
        let run = try RunProcess(url: node.url, label: "deadline", logLevel: "notice",
                                 extraArguments: ["--shutdown-timeout", "2"])
        defer { run.cleanUp() }
        try await run.waitUntilConsuming(url: node.url, label: "deadline")
        let pid = try await runOnThread { try node.freeze() }
        defer { kill(pid, SIGCONT) }
        let signalled = ContinuousClock.now
        run.process.kill(signal: SIGTERM)
        let status = try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(60)) }
        let log = run.process.errorOutput()
        #expect(ContinuousClock.now - signalled >= .seconds(2), "\(log)")
        #expect(log.contains("graceful shutdown took longer than 2 s; cancelling what is still running: "
            + "its messages go back to their queues"), "\(log)")
        #expect(log.contains("warning"), "\(log)")
        // Documented (README, Shutdown and recovery): 0, nothing is lost; the last line says it was cut short.
        #expect(status == 0, "\(log)")
        #expect(log.contains("shutdown=cut short at the time limit"), "\(log)")
    }
}
