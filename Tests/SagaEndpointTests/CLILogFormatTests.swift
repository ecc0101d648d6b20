import BrokerTestSupport
import Foundation
import Testing

/// The executable's log lines: stamped in UTC to the millisecond, as text or as JSON for a collector.
@Suite("saga-endpoint log format", .timeLimit(.minutes(4)))
struct CLILogFormatTests {
    func errorsList(_ harness: EndpointHarness, _ extra: [String], environment: [String: String] = [:]) async throws -> CLIRun {
        let process = try ChildProcess(executable: CLIProcessTests.executablePath,
                                       arguments: ["errors", "list", "--amqp-url", harness.url, "--log-level", "info"] + extra,
                                       environment: environment)
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
    }

    /// `2026-12-07T01:45:12.345Z`.
    static func isMillisecondsUTC(_ text: String) -> Bool {
        text.wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/#) != nil
    }

    // Found by an operations review: the lines were stamped in local time to the second (records of one
    // second could not be ordered, nor matched with the broker's log), and a log collector had to parse
    // `key=value` text.
    @Test("--log-format json (or LOG_FORMAT): one JSON object per line with time, level, message and metadata")
    func jsonLines() async throws {
        let harness = try await EndpointHarness.make()
        for run in [try await errorsList(harness, ["--log-format", "json"]),
                    try await errorsList(harness, [], environment: ["LOG_FORMAT": "json"])] {
            #expect(run.status == 0, "\(run)")
            let lines = run.errorOutput.split(separator: "\n").filter { !$0.hasPrefix("note:") }
            let connected = try #require(lines.compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }.first { $0["message"] as? String == "AMQP connected" }, "\(run)")
            #expect(connected["level"] as? String == "info")
            #expect((connected["time"] as? String).map(Self.isMillisecondsUTC) == true, "\(connected)")
            #expect(connected["amqp.connection"] != nil, "\(connected)")
            #expect(!run.errorOutput.contains("guest:guest"), "no password: \(run)")
        }
        await harness.tearDown()
    }

    // A review: under --log-format json the last line of a failed command, "Error: …", was ArgumentParser's
    // plain text, the one line a collector parsing stderr as JSON could not read, and the one saying why.
    @Test("--log-format json: a command's final error is a JSON record too, with its exit status")
    func jsonFinalError() async throws {
        let harness = try await EndpointHarness.make()
        for run in [try await errorsList(harness, ["--queue", "nope.error", "--log-format", "json"]),
                    try await errorsList(harness, ["--queue", "nope.error"], environment: ["LOG_FORMAT": "json"])] {
            #expect(run.status == 1, "\(run)")
            let lines = run.errorOutput.split(separator: "\n")
            let records = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            #expect(records.count == lines.count, "every line a JSON record: \(run)")
            let last = try #require(records.last, "\(run)")
            #expect(last["level"] as? String == "error", "\(last)")
            #expect(last["message"] as? String == "error queue 'nope.error' does not exist in vhost '\(harness.vhost)'",
                    "\(last)")
            #expect(last["exit_status"] as? String == "1", "\(last)")
            #expect((last["time"] as? String).map(Self.isMillisecondsUTC) == true, "\(last)")
        }
        // Text stays as it was.
        let text = try await errorsList(harness, ["--queue", "nope.error"])
        #expect(text.errorOutput.hasSuffix("Error: error queue 'nope.error' does not exist in vhost '\(harness.vhost)'\n"),
                "\(text)")
        await harness.tearDown()
    }

    // Failed before: a bad flag found by the parser, before the log is set up, printed ArgumentParser's
    // text lines (Error, Help, Usage, See) although the command line asked for JSON.
    @Test("a usage error under --log-format json or LOG_FORMAT=json is one JSON record with exit_status 64; stdout stays empty")
    func jsonUsageError() async throws {
        func outcome(_ arguments: [String], environment: [String: String] = [:]) async throws -> CLIRun {
            let process = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: arguments,
                                           environment: environment)
            let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
            return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
        }
        for (run, names) in [(try await outcome(["run", "--log-format", "json", "--prefetch", "abc"]), "'--prefetch <prefetch>'"),
                             (try await outcome(["run", "--log-format=json", "--prefetch", "0"]), "--prefetch must be at least 1"),
                             (try await outcome(["errors", "list", "--bogus"], environment: ["LOG_FORMAT": "json"]), "'--bogus'")] {
            #expect(run.status == 64, "\(run)")
            #expect(run.output.isEmpty, "\(run)")
            let lines = run.errorOutput.split(separator: "\n")
            let records = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            #expect(lines.count == 1 && records.count == 1, "one JSON record: \(run)")
            #expect(records.first?["level"] as? String == "error", "\(run)")
            #expect(records.first?["exit_status"] as? String == "64", "\(run)")
            #expect((records.first?["message"] as? String)?.contains(names) == true, "\(run)")
            #expect((records.first?["message"] as? String)?.contains("Usage: saga-endpoint ") == true, "\(run)")
        }
        // The format given is what is wrong, or none is asked for: ArgumentParser's text, as before.
        for run in [try await outcome(["run", "--log-format", "xml", "--prefetch", "abc"], environment: ["LOG_FORMAT": "json"]),
                    try await outcome(["run", "--prefetch", "abc"])] {
            #expect(run.status == 64 && run.errorOutput.hasPrefix("Error: "), "\(run)")
        }
    }

    @Test("text lines carry the time in UTC to the millisecond; a bad --log-format exits 64 naming it")
    func textLinesAndBadFormat() async throws {
        let harness = try await EndpointHarness.make()
        let run = try await errorsList(harness, [])
        let line = try #require(run.errorOutput.split(separator: "\n").first { $0.contains("AMQP connected") }, "\(run)")
        let stamp = String(line.prefix { $0 != " " })
        #expect(Self.isMillisecondsUTC(stamp), "\(line)")
        let bad = try await errorsList(harness, ["--log-format", "xml"])
        #expect(bad.status == 64 && bad.errorOutput.contains("--log-format"), "\(bad)")
        await harness.tearDown()
    }

    // A review: Foundation's FileHandle.write traps when the write fails, so with stderr on a full disk
    // (or closed) the process died at its first log line (exit 132, Illegal instruction): a crash loop
    // under a supervisor while the log disk stays full.
    @Test("stderr that cannot be written (a full disk, closed) does not kill the process")
    func unwritableStderr() async throws {
        let harness = try await EndpointHarness.make()
        for redirect in ["2>/dev/full", "2>&-"] {
            let process = try ChildProcess(executable: "/bin/sh", arguments: [
                "-c", "exec \"$0\" errors list --amqp-url \"$1\" --log-level info \(redirect)",
                CLIProcessTests.executablePath, harness.url])
            let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
            #expect(status == 0 && !process.terminatedBySignal, "\(redirect): status \(status)")
        }
        await harness.tearDown()
    }
}
