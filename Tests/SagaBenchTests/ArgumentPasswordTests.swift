import BrokerTestSupport
import Foundation
import Testing

/// A process's arguments are readable by every local user (`ps -ef`, `/proc/PID/cmdline`): `saga-bench --url
/// amqp://user:secret@host/` showed the broker's password to all of them for the whole run (minutes, in
/// `make bench`), while `saga-endpoint` overwrites its `--amqp-url`'s at start. saga-bench does the same now.
@Suite("saga-bench: the URL's password is not left in the process's arguments", .timeLimit(.minutes(3)))
struct ArgumentPasswordTests {
    static var executablePath: String {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
            directory.deleteLastPathComponent()
        }
        let candidates = [".build/debug/saga-bench", ".build/x86_64-unknown-linux-gnu/debug/saga-bench"]
        return candidates.map { directory.appendingPathComponent($0).path }
            .first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    // Failed before: /proc/PID/cmdline still held `guest:guest@` while the bench ran against the broker.
    @Test("--url: once saga-bench is connected, /proc/PID/cmdline shows the URL with its password overwritten")
    func passwordOverwrittenInArguments() async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        defer { _ = try? TestBroker.deleteVhost(vhost.name) }
        #expect(vhost.url.contains("guest:guest@"))
        // Far more messages than it fills in the time the test looks: it is still running then.
        let bench = try ChildProcess(executable: Self.executablePath, arguments: [
            "--url", vhost.url, "--messages", "5000000", "--rounds", "1", "--case", "raw", "--latency-seconds", "0"])
        defer { bench.kill(signal: SIGKILL) }
        // Connected to the broker: well past the start, where the arguments are overwritten.
        try await waitUntil(timeout: .seconds(60), message: "saga-bench connects to its vhost") {
            let connections = try await runOnThread { try TestBroker.rabbitmqctl(["list_connections", "vhost"]) }
            return connections.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == vhost.name }
        }
        #expect(bench.isRunning, "\(bench.errorOutput())")
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(bench.pid)/cmdline"))
        let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(!arguments.contains { $0.contains("guest:guest@") }, "\(arguments)")
        #expect(arguments.contains { $0.hasPrefix("amqp://guest:*****@127.0.0.1:") }, "\(arguments)")
        #expect(arguments.contains("--messages") && arguments.contains("5000000"), "the others intact: \(arguments)")
        bench.kill(signal: SIGKILL)
        _ = try await runOnThread { try bench.waitUntilExit(timeout: .seconds(30)) }
    }
}
