import BrokerTestSupport
import Foundation
import Testing

/// A process's arguments are readable by every local user (`ps -ef`, `/proc/PID/cmdline`): `run
/// --amqp-url amqp://user:secret@host/` showed the broker's password to all of them for as long as the
/// endpoint ran, while the README promises it is never printed. The executable now overwrites the password
/// in its own arguments at start (they are parsed from a copy). Between the exec and that overwrite it is
/// still there for an instant: AMQP_URL or the config file keep it out entirely (README).
@Suite("saga-endpoint: the URL's password is not left in the process's arguments", .timeLimit(.minutes(3)))
struct CLIArgumentPasswordTests {
    @Test("run --amqp-url: /proc/PID/cmdline shows the URL with its password overwritten")
    func passwordOverwrittenInArguments() async throws {
        let harness = try await EndpointHarness.make()
        #expect(harness.url.contains("guest:guest@"))
        let run = try RunProcess(url: harness.url, label: "argv-password")
        defer { run.cleanUp() }
        try await run.waitUntilConsuming(url: harness.url, label: "argv-password")
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(run.process.pid)/cmdline"))
        let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(!arguments.contains { $0.contains("guest:guest@") }, "\(arguments)")
        #expect(arguments.contains { $0.hasPrefix("amqp://guest:*****@127.0.0.1:") }, "\(arguments)")
        // It still connected with the real password: it consumes (above), and its other arguments are intact.
        #expect(arguments.contains("--database") && arguments.contains("--http-port"), "\(arguments)")
        run.process.kill()
        _ = try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(60)) }
        await harness.tearDown()
    }
}
