import BrokerTestSupport
import Foundation
import Testing

/// The config file may hold the broker URL with its password. One left readable by its group or by others
/// (0644, an editor's or a deployment tool's default) gave it to every local user without a word; now the
/// command warns, once, naming the file and its mode (never the password), and goes on.
@Suite("saga-endpoint: a config file with a password, readable by others", .timeLimit(.minutes(2)))
struct CLIConfigFileModeTests {
    func configFile(_ json: String, mode: Int) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("saga-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("saga.json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
        return file
    }

    /// Runs `errors list` in an environment of its own: the test process's AMQP_URL (the shared node's `/`)
    /// wins over the file's `amqp-url`, so the command listed `/`'s transfers.error, which exists only where an
    /// earlier run (`make demo`) left it: on a fresh broker it exited 1.
    func errorsList(config: String, extra: [String] = []) async throws -> CLIRun {
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        let process = try ChildProcess(executable: CLIProcessTests.executablePath,
                                       arguments: ["errors", "list", "--config", config] + extra,
                                       environment: environment, inheritEnvironment: false)
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
    }

    // Failed before: no warning at any mode.
    @Test("0644 or 0640 with a password: one warning naming the file and mode; 0600, or no password: none")
    func exposedFileIsReported() async throws {
        let harness = try await EndpointHarness.make()
        #expect(harness.url.contains("guest:guest@"))
        // In both places a command reads it: the warning still comes once.
        let withPassword = #"{"amqp-url": "\#(harness.url)", "run": {"amqp-url": "\#(harness.url)"}}"#
        for mode in [0o644, 0o640] {
            let path = try configFile(withPassword, mode: mode)
            let run = try await errorsList(config: path)
            #expect(run.status == 0, "it does not refuse to start: \(run)")
            let warnings = run.errorOutput.split(separator: "\n").filter { $0.contains("readable by other users") }
            #expect(warnings.count == 1, "\(run)")
            #expect(warnings.first?.contains(" warning ") == true, "\(run)")
            #expect(warnings.first?.contains("path=\(path)") == true, "\(run)")
            #expect(warnings.first?.contains("mode=0\(String(mode, radix: 8))") == true, "\(run)")
            #expect(!run.errorOutput.contains("guest:guest"), "\(run)")
            // As a JSON record too, with the same fields.
            let json = try await errorsList(config: path, extra: ["--log-format", "json"])
            let records = json.errorOutput.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }.filter { ($0["message"] as? String)?.contains("readable by other users") == true }
            #expect(records.count == 1 && records.first?["level"] as? String == "warning", "\(json)")
            #expect(records.first?["path"] as? String == path, "\(json)")
        }
        let privateFile = try configFile(withPassword, mode: 0o600)
        let quiet = try await errorsList(config: privateFile)
        #expect(quiet.status == 0 && !quiet.errorOutput.contains("readable by other users"), "\(quiet)")
        let noPassword = try configFile(#"{"log-level": "info"}"#, mode: 0o644)
        let open = try await errorsList(config: noPassword, extra: ["--amqp-url", harness.url])
        #expect(open.status == 0 && !open.errorOutput.contains("readable by other users"), "\(open)")
        await harness.tearDown()
    }
}
