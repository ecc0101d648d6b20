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

    // Failed before: an error that stopped `run` (here a refused login) reached stderr only as
    // ArgumentParser's plain "Error: …" line, after the JSON "starting endpoint" record: a log collector
    // reading `--log-format json` saw the endpoint start and never why it stopped, and an alert on the
    // level had nothing to fire on. Then (a later review) it was two records, the critical `exiting` and the
    // final error record repeating it: one failure counted twice by an alert on errors.
    @Test("an error that stops run is one critical JSON record, exiting, with the error and the exit status; text keeps both lines")
    func aStopByAnErrorIsLogged() async throws {
        let harness = try await EndpointHarness.make()
        let refused = harness.url.replacingOccurrences(of: "guest:guest@", with: "guest:wrong-password@")
        #expect(refused != harness.url)
        let run = try RunProcess(url: refused, label: "stopped-by-error", logLevel: "notice",
                                 extraArguments: ["--no-declare-topology", "--log-format", "json"])
        defer { run.cleanUp() }
        let status = try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(60)) }
        let lines = run.process.errorLines().filter { !$0.isEmpty }
        #expect(status == 1, "\(lines)")
        let records = lines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
        #expect(records.count == lines.count, "every line a JSON record: \(lines)")
        #expect(!lines.joined().contains("wrong-password"), "\(lines)")
        // One record for the failure, the last one: `exiting`, critical, with the error and the exit status.
        let naming = records.filter { "\($0)".contains("authenticationFailed") }
        #expect(naming.count == 1, "\(lines)")
        let last = try #require(records.last, "\(lines)")
        #expect(last["level"] as? String == "critical" && last["message"] as? String == "exiting", "\(lines)")
        #expect(last["shutdown"] as? String == "stopped by an error", "\(lines)")
        #expect((last["error"] as? String)?.contains("authenticationFailed") == true, "\(lines)")
        #expect(last["exit_status"] as? String == "1", "\(lines)")

        // In text, the log line and ArgumentParser's "Error: …" line, as the README says.
        let text = try RunProcess(url: refused, label: "stopped-by-error-text", logLevel: "notice",
                                  extraArguments: ["--no-declare-topology"])
        defer { text.cleanUp() }
        #expect(try await runOnThread { try text.process.waitUntilExit(timeout: .seconds(60)) } == 1)
        let log = text.process.errorOutput()
        #expect(log.contains("critical") && log.contains("shutdown=stopped by an error"), "\(log)")
        #expect(log.split(separator: "\n").last?.hasPrefix("Error: AMQP authenticationFailed") == true, "\(log)")
        await harness.tearDown()
    }
}
