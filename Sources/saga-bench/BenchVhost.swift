// A virtual host of the bench's own on the shared broker, made and removed with rabbitmqctl (`--ctl`, e.g.
// `scripts/broker.sh ctl`). The money-transfer cases need it: TransferSaga sends to `bank` and publishes to
// `transfers.events` by name, and in the default vhost those may belong to a running demo or another run.
import Foundation

struct BenchVhost {
    let name: String
    /// The command prefix that runs rabbitmqctl against the broker, as given to `--ctl`.
    let ctl: String

    /// Creates `saga-bench-<random>` with full permissions for `user`.
    static func create(ctl: String, user: String) throws -> BenchVhost {
        let vhost = BenchVhost(name: "saga-bench-\(UInt32.random(in: 0...UInt32.max))", ctl: ctl)
        try vhost.rabbitmqctl(["add_vhost", vhost.name])
        do {
            try vhost.rabbitmqctl(["set_permissions", "-p", vhost.name, user, ".*", ".*", ".*"])
        } catch {
            vhost.delete()
            throw error
        }
        return vhost
    }

    /// Deletes the vhost and everything in it (queues, exchanges, messages left by a failed run).
    func delete() {
        do {
            try rabbitmqctl(["delete_vhost", name])
        } catch {
            FileHandle.standardError.write(Data("saga-bench: could not delete vhost \(name): \(error)\n".utf8))
        }
    }

    /// Runs `<ctl> ARGS…` through the shell (the prefix may be several words) and throws with its output
    /// when it fails.
    func rabbitmqctl(_ arguments: [String]) throws {
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", ([ctl] + quoted).joined(separator: " ")]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchmarkError("`\(ctl) \(arguments.joined(separator: " "))` failed (\(process.terminationStatus)): \(text)")
        }
    }
}
