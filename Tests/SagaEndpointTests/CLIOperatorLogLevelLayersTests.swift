// Every operator command layers its log level as `run` does: flag > LOG_LEVEL > config file (top level or
// `run` section) > info (no broker needed). Compiled only with SAGA_ENDPOINT_CLI_TESTS (see
// CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import Logging
@testable import saga_endpoint
import Testing

@Suite struct CLIOperatorLogLevelLayersTests {
    static let commands: [[String]] = [
        ["errors", "list"], ["errors", "show", "id-1"], ["errors", "replay", "--all"], ["errors", "delete", "id-1"],
        ["errors", "purge"], ["topology", "declare"], ["topology", "verify"], ["sagas", "list"],
        ["sagas", "show", "TransferSaga", "t-1"], ["transfer", "--from", "a", "--to", "b", "--amount", "5"],
    ]

    func level(_ arguments: [String], environment: [String: String] = [:]) throws -> Logger.Level {
        let command = try #require(try SagaEndpointCLI.parseAsRoot(arguments) as? any OperatorLogging, "\(arguments)")
        return try command.logLevel(environment: environment)
    }

    @Test(arguments: commands)
    func theLevelComesFromFlagThenEnvironmentThenFileThenDefault(command: [String]) throws {
        let top = try CLIConfigFileTests().configFile(#"{"log-level": "error"}"#)
        let section = try CLIConfigFileTests().configFile(#"{"log-level": "error", "run": {"log-level": "warning"}}"#)
        #expect(try level(command + ["--config", top]) == .error)
        #expect(try level(command, environment: ["SAGA_CONFIG": top]) == .error)
        #expect(try level(command + ["--config", section]) == .warning)
        #expect(try level(command + ["--config", top], environment: ["LOG_LEVEL": "notice"]) == .notice)
        #expect(try level(command + ["--config", top, "--log-level", "debug"], environment: ["LOG_LEVEL": "notice"]) == .debug)
        #expect(try level(command) == .info)
    }
}
#endif
