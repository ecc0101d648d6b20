import AMQPTransport
import ArgumentParser

/// `saga-endpoint`: hosts the money-transfer sagas and the simulated bank on RabbitMQ, manages the
/// broker topology, inspects saga state and drives the end-to-end demo.
struct SagaEndpointCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "saga-endpoint",
        abstract: "Saga endpoint for RabbitMQ: the money-transfer reference app and its tools.",
        discussion: """
            Options fall back to the environment: AMQP_URL, SAGA_DATABASE (BANK_DATABASE for `bank`), LOG_LEVEL; \
            then to a JSON config file (--config or SAGA_CONFIG; every command but `demo`: the broker URL, \
            database, topology folder and log level for the operator commands, all settings for `run` and `bank`), then to \
            the defaults.
            """,
        subcommands: [
            RunCommand.self, BankCommand.self, TopologyCommand.self, SagasCommand.self,
            TransferCommand.self, DemoCommand.self, ErrorsCommand.self,
        ]
    )
}

// Not ArgumentParser's `main`: a bad setting found while a command runs (from the config file) is
// reported like a bad flag, with the command's usage line and status 64 (SettingErrors.swift).
func runCommandLine() async {
    await SagaEndpointCLI.mainReportingSettingErrors()
}

ArgumentPasswords.hide()
await runCommandLine()
