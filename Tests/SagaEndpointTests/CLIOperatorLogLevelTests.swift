// The operator commands take their log level from the same layers as `run`: `--log-level`, `LOG_LEVEL`,
// the config file's `log-level` (top level or `run` section), `info`. Before, they skipped the file.
import BrokerTestSupport
import Foundation
import Testing

@Suite("saga-endpoint operator commands: log-level from the config file", .timeLimit(.minutes(4)))
struct CLIOperatorLogLevelTests {
    /// Runs `saga-endpoint <arguments>` with `environment` over a clean LOG_LEVEL and SAGA_CONFIG.
    func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> CLIRun {
        let process = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: arguments,
                                       environment: ["LOG_LEVEL": "", "SAGA_CONFIG": ""].merging(environment) { $1 })
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
    }

    func configFile(_ json: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("op-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: file)
        return file.path
    }

    // Failed before: `{"log-level": "error"}` in the file, and `errors list` still logged "AMQP connected"
    // (info) on stderr.
    @Test("errors list --config with log-level error logs nothing at info; LOG_LEVEL still wins over the file")
    func errorsListHonoursTheFilesLogLevel() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["ll-1"], in: "transfers.error")
        let quiet = try configFile(#"{"log-level": "error"}"#)
        let inRunSection = try configFile(#"{"run": {"log-level": "error"}}"#)
        defer { for path in [quiet, inRunSection] { try? FileManager.default.removeItem(atPath: path) } }

        for path in [quiet, inRunSection] {
            let list = try await run(["errors", "list", "--config", path, "--amqp-url", harness.url])
            #expect(list.status == 0 && list.output.contains("\"ll-1\""), "\(list)")
            #expect(!list.errorOutput.contains("AMQP connected"), "\(list)")
        }
        let fromEnvironment = try await run(["errors", "list", "--amqp-url", harness.url],
                                            environment: ["SAGA_CONFIG": quiet])
        #expect(fromEnvironment.status == 0 && !fromEnvironment.errorOutput.contains("AMQP connected"), "\(fromEnvironment)")
        // The same command logs the line at info, so its absence above is the file's level at work.
        let loud = try await run(["errors", "list", "--config", quiet, "--amqp-url", harness.url],
                                 environment: ["LOG_LEVEL": "info"])
        #expect(loud.status == 0 && loud.errorOutput.contains("AMQP connected"), "\(loud)")
        let flag = try await run(["errors", "list", "--config", quiet, "--amqp-url", harness.url, "--log-level", "info"],
                                 environment: ["LOG_LEVEL": "error"])
        #expect(flag.status == 0 && flag.errorOutput.contains("AMQP connected"), "\(flag)")
        await harness.tearDown()
    }
}
