// The top-level help of saga-endpoint against the commands it describes (no broker). Compiled only with
// SAGA_ENDPOINT_CLI_TESTS (see CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import ArgumentParser
@testable import saga_endpoint
import Testing

@Suite struct CLIOverviewTests {
    static let leaves: [(name: String, command: any ParsableCommand.Type)] = [
        ("run", RunCommand.self), ("bank", BankCommand.self),
        ("topology declare", TopologyCommand.Declare.self), ("topology verify", TopologyCommand.Verify.self),
        ("topology export", TopologyCommand.Export.self),
        ("sagas list", SagasCommand.List.self), ("sagas show", SagasCommand.Show.self),
        ("transfer", TransferCommand.self), ("demo", DemoCommand.self),
        ("errors list", ErrorsCommand.List.self), ("errors show", ErrorsCommand.Show.self),
        ("errors replay", ErrorsCommand.Replay.self), ("errors purge", ErrorsCommand.Purge.self),
    ]

    // Failed before: `saga-endpoint --help` said the config file is read by every command but `demo` and
    // `topology export`, yet `topology export --config` (or SAGA_CONFIG) takes the vhost and the topology
    // folder from the file, as the README says.
    @Test func theOverviewNamesOnlyTheCommandsWithoutAConfigFile() {
        let withoutConfig = Self.leaves.filter { !$0.command.helpMessage(columns: 200).contains("--config") }.map(\.name)
        #expect(withoutConfig == ["demo"])
        // "every command but `a` and `b`: …": the names between "but" and the colon.
        let discussion = SagaEndpointCLI.configuration.discussion
        let exceptions = discussion.split(separator: "every command but ").dropFirst().first?
            .prefix { $0 != ":" }.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
        #expect(exceptions == withoutConfig)
    }

    // Failed before: the README's table gives `--log-level` and `--log-format` to every command, yet
    // `topology export --log-level warning` was refused ("Unknown option", exit 64), so a wrapper passing
    // the operator's log settings to every command broke on export.
    @Test func everyCommandTakesTheLogFlags() {
        let without = Self.leaves.filter {
            let help = $0.command.helpMessage(columns: 200)
            return !help.contains("--log-level") || !help.contains("--log-format")
        }.map(\.name)
        #expect(without.isEmpty)
        #expect(throws: Never.self) { try SagaEndpointCLI.parseAsRoot(["topology", "export", "--log-level", "warning"]) }
    }
}
#endif
