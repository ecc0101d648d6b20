// `run` at the README's example level, notice: the operator sees it start and stop, and nothing per message.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("saga-endpoint run: lifecycle lines at notice", .timeLimit(.minutes(4)))
struct CLILifecycleNoticeTests {
    // Failed before: the lifecycle lines were info records, so `"log-level": "notice"` showed nothing at
    // start or stop.
    @Test("with --log-level notice, run logs its start, its graceful shutdown and its stop")
    func lifecycleLinesAreNotices() async throws {
        let harness = try await EndpointHarness.make()
        let run = try RunProcess(url: harness.url, label: "lifecycle", logLevel: "notice",
                                 extraArguments: ["--no-declare-topology"])
        defer { run.cleanUp() }
        try await waitUntil(timeout: .seconds(30), message: "run logs that it started") {
            run.process.errorOutput().contains("endpoint started")
        }
        run.process.kill(signal: SIGTERM)
        let status = try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(30)) }
        let log = run.process.errorOutput()
        #expect(status == 0, "\(log)")
        for line in ["starting endpoint", "endpoint started", "graceful shutdown: stopping consumers", "endpoint stopped",
                     "exiting"] {
            #expect(log.contains("notice") && log.contains(line), "\(line): \(log)")
        }
        // Stopped in time: no warning, and the last line says so.
        #expect(!log.contains("graceful shutdown took longer"), "\(log)")
        #expect(log.contains("shutdown=completed"), "\(log)")
        #expect(!log.contains(" info "), "nothing below notice: \(log)")
        await harness.tearDown()
    }
}
