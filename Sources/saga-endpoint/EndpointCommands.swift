import AMQPTransport
import ArgumentParser
import Foundation
import Logging
import MoneyTransfer
import Sagas
import SagaEndpoint
import ServiceLifecycle

/// `run`: the transfer and payout sagas.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Host the transfer and payout sagas (input queues transfers, payouts) until SIGTERM/SIGINT.")

    @OptionGroup var config: ConfigOptions
    @OptionGroup var amqp: AMQPOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var endpoint: EndpointOptions

    @Option(help: ArgumentHelp("Seconds a transfer waits for a bank reply before re-sending the command (default 10).",
                               valueName: "seconds"))
    var bankTimeout: Double?

    func validate() throws {
        if let bankTimeout, !(bankTimeout.isFinite && bankTimeout > 0) {
            throw ValidationError("--bank-timeout must be a positive number of seconds")
        }
        // The layered settings (environment, config file) are resolved by `run()` before any work, and a
        // bad one is reported there like a bad flag (SettingErrors.swift): a ConfigFileError thrown here
        // would exit 1 instead.
    }

    /// The settings after layering flags over `environment` over the config file over the defaults.
    func settings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RunSettings {
        let layers = try SettingLayers(configPath: config.pathOption, section: .run, environment: environment)
        let endpoint = try EndpointSettings(
            amqp: amqp, database: database.source, logging: logging, endpoint: self.endpoint, layers: layers)
        let timeout = try layers.resolve(flag: bankTimeout, flagName: "--bank-timeout", fromFile: { $0.number(.bankTimeout) },
                                         key: .bankTimeout, default: RunSettings.defaultBankTimeout).value
        return RunSettings(endpoint: endpoint, bankTimeout: timeout)
    }

    func run() async throws {
        let settings = try settings()
        let logger = LoggingOptions.bootstrap(level: settings.endpoint.logLevel,
                                                 format: settings.endpoint.logFormat)
        let queues = [MoneyTransferApp.transfersQueue, MoneyTransferApp.payoutsQueue]
        let registry = MoneyTransferApp.registry(bankTimeout: secondsDuration(settings.bankTimeout))
        try await EndpointHost.run(queues: queues, connectionName: "saga-endpoint", registry: registry,
                                   settings: settings.endpoint, logger: logger)
    }
}

/// `bank`: the simulated bank as an endpoint of its own.
struct BankCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bank",
        abstract: "Run the simulated bank (input queue bank) until SIGTERM/SIGINT.",
        discussion: """
            Debits of underfunded accounts are rejected (InsufficientFunds), credits of closed accounts are \
            rejected (AccountClosed), refunds always succeed. Accounts are closed/underfunded when listed, or \
            when their name starts with the prefix (closed-…, poor-…). Commands are deduplicated by message id.
            """)

    @OptionGroup var config: ConfigOptions
    @OptionGroup var amqp: AMQPOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var endpoint: EndpointOptions

    @Option(name: .customLong("database"),
            help: ArgumentHelp("SQLite file of the bank's inbox (env BANK_DATABASE; default bank.sqlite).", valueName: "path"))
    var databaseOption: String?
    @Option(help: "Fee of a debit, in minor units (default 25).") var debitFee: Int?
    @Option(help: "Fee of a credit, in minor units (default 15).") var creditFee: Int?
    @Option(help: "Fee of a refund, in minor units (default 10).") var refundFee: Int?
    @Option(help: ArgumentHelp("Accounts whose credits are rejected (comma-separated).", valueName: "a,b"))
    var closedAccounts: String?
    @Option(help: ArgumentHelp("Accounts whose debits are rejected (comma-separated).", valueName: "c,d"))
    var underfundedAccounts: String?
    @Option(help: "Accounts starting with this are closed (empty: none; default closed-).") var closedPrefix: String?
    @Option(help: "Accounts starting with this are underfunded (empty: none; default poor-).") var underfundedPrefix: String?

    func validate() throws {
        for (name, fee) in [("--debit-fee", debitFee), ("--credit-fee", creditFee), ("--refund-fee", refundFee)] {
            if let fee, fee < 0 { throw ValidationError("\(name) must not be negative") }
        }
        // The layered settings are resolved by `run()`, as `run`'s are (see RunCommand.validate).
    }

    static func accounts(_ list: String) -> Set<String> {
        Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    /// The settings after layering flags over `environment` over the config file over the defaults.
    func settings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> BankSettings {
        let layers = try SettingLayers(configPath: config.pathOption, section: .bank, environment: environment)
        let endpoint = try EndpointSettings(
            amqp: amqp, database: .init(flag: databaseOption, environmentVariable: "BANK_DATABASE",
                                        defaultPath: BankSettings.defaultDatabase),
            logging: logging, endpoint: self.endpoint, layers: layers)
        func fee(_ flag: Int?, _ name: String, _ key: ConfigKey, _ defaultValue: Int) throws -> Int {
            try layers.resolve(flag: flag, flagName: name, fromFile: { $0.integer(key) }, key: key, default: defaultValue).value
        }
        func text(_ flag: String?, _ name: String, _ key: ConfigKey, _ defaultValue: String) throws -> String {
            try layers.resolve(flag: flag, flagName: name, fromFile: { key.kind == .accounts ? $0.accounts(key) : $0.string(key) },
                               key: key, default: defaultValue).value
        }
        let closedPrefix = try text(self.closedPrefix, "--closed-prefix", .closedPrefix, "closed-")
        let underfundedPrefix = try text(self.underfundedPrefix, "--underfunded-prefix", .underfundedPrefix, "poor-")
        let simulator = BankSimulator(
            debitFee: try fee(debitFee, "--debit-fee", .debitFee, 25),
            creditFee: try fee(creditFee, "--credit-fee", .creditFee, 15),
            refundFee: try fee(refundFee, "--refund-fee", .refundFee, 10),
            closedAccounts: Self.accounts(try text(closedAccounts, "--closed-accounts", .closedAccounts, "")),
            underfundedAccounts: Self.accounts(try text(underfundedAccounts, "--underfunded-accounts", .underfundedAccounts, "")),
            closedAccountPrefix: closedPrefix.isEmpty ? nil : closedPrefix,
            underfundedAccountPrefix: underfundedPrefix.isEmpty ? nil : underfundedPrefix)
        return BankSettings(endpoint: endpoint, simulator: simulator)
    }

    func run() async throws {
        let settings = try settings()
        let logger = LoggingOptions.bootstrap(level: settings.endpoint.logLevel,
                                                 format: settings.endpoint.logFormat)
        try await EndpointHost.run(
            queues: [MoneyTransferApp.bankQueue], connectionName: "saga-endpoint-bank",
            registry: MoneyTransferApp.bankRegistry(settings.simulator), settings: settings.endpoint, logger: logger)
    }
}

/// Options of `run` and `bank`. Unset ones fall back to the config file, then to the defaults (see
/// `EndpointSettings`).
struct EndpointOptions: ParsableArguments {
    static let defaultPrefetch: UInt16 = 400
    static let defaultBatchSize = 100
    static let defaultHTTPHost = "127.0.0.1"
    static let defaultShutdownTimeout: Double = 30

    @Option(help: "Unacknowledged deliveries in flight per input queue (default 400).") var prefetch: UInt16?
    @Option(help: "Messages handled per SQLite transaction (default 100).") var batchSize: Int?
    @Flag(inversion: .prefixedNo, help: "Declare the topology files (idempotent) at start and again whenever a broker connection recovers (default: yes).")
    var declareTopology: Bool?
    @Option(help: ArgumentHelp("Serve /metrics, /health/live and /health/ready on this port (off when not given; env HTTP_PORT).", valueName: "port"))
    var httpPort: Int?
    @Option(help: "Address of the HTTP server (default 127.0.0.1).") var httpHost: String?
    @Option(help: ArgumentHelp(
        "Seconds a graceful shutdown may take before what still runs is cancelled (default 30; keep it below the service manager's own grace period).",
        valueName: "seconds"))
    var shutdownTimeout: Double?
    @OptionGroup var topology: TopologyOptions

    func validate() throws {
        if let prefetch, prefetch == 0 { throw ValidationError("--prefetch must be at least 1") }
        // The config file's `batch-size` has the same bounds (ConfigFile.swift).
        if let batchSize, !(1...1_000_000).contains(batchSize) {
            throw ValidationError("--batch-size must be between 1 and 1000000")
        }
        if let httpPort, !(0...65535).contains(httpPort) {
            throw ValidationError("--http-port must be between 0 and 65535")
        }
        if let httpHost, httpHost.isEmpty { throw ValidationError("--http-host must not be empty") }
        // As the config file's `shutdown-timeout` (a positive number of seconds, ConfigFile.swift).
        if let shutdownTimeout, !(shutdownTimeout.isFinite && shutdownTimeout > 0) {
            throw ValidationError("--shutdown-timeout must be a positive number of seconds")
        }
    }
}

enum EndpointHost {
    /// Runs one endpoint in a ServiceGroup that shuts it down gracefully on SIGTERM or SIGINT (the command
    /// then exits 0, also when the shutdown ran past `--shutdown-timeout` and was cancelled); the endpoint declares the topology once connected (waiting for the broker meanwhile,
    /// with /health/live answering and a signal ending the wait). What can be checked without the
    /// broker is checked first (the database opens, the topology files parse, the HTTP port is free), so a
    /// mistake stops the command before it does any work.
    static func run(
        queues: [String], connectionName: String, registry: HandlerRegistry, settings: EndpointSettings, logger: Logger
    ) async throws {
        do {
            try await serve(queues: queues, connectionName: connectionName, registry: registry, settings: settings,
                            logger: logger)
        } catch {
            // The "Error: …" line printed after this is not a log record: with `--log-format json` a collector
            // saw the endpoint start and never why it stopped (a refused login, a topology the broker
            // refused, a database it cannot open), and an alert on the level had nothing to fire on.
            // Redacted: the error may quote a setting, a broker URL among them (a URL given as --database).
            // In JSON this record is the final error record too (one record for one failure).
            FinalErrorRecord.stoppedByError(logger, level: .critical, "exiting", metadata: [
                "shutdown": "stopped by an error", "error": "\(AMQPConfiguration.redactingURLs(in: "\(error)"))"])
            throw error
        }
    }

    private static func serve(
        queues: [String], connectionName: String, registry: HandlerRegistry, settings: EndpointSettings, logger: Logger
    ) async throws {
        try DatabasePreflight.check(settings.databasePath, endpoint: queues.first ?? connectionName, logger: logger)
        let topology = settings.declareTopology
            ? try TopologyOptions.load(directory: settings.topologyDirectory, logger: logger) : nil
        var configuration = EndpointConfiguration(amqpURL: settings.amqpURL, inputQueues: queues,
                                                  databasePath: settings.databasePath)
        // Declared by the endpoint on its own connections, so that they declare it again whenever they
        // recover; `--no-declare-topology`: neither at start nor on recovery.
        configuration.topology = topology?.endpointTopology
        configuration.prefetch = settings.prefetch
        configuration.batchSize = settings.batchSize
        configuration.connectionName = Self.connectionName(url: settings.amqpURL, default: connectionName)
        let metrics = OperationsWiring.bootstrapMetrics()
        let endpoint = SagaEndpoint(configuration: configuration, registry: registry, logger: logger)
        // The group shuts its services down last-added first, one after the other: the operations server
        // comes first so that it goes last, answering /health/ready with 503 (and /health/live with 200)
        // while the endpoint finishes the messages in flight, instead of refusing connections.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let port = settings.httpPort {
            let server = OperationsWiring.server(host: settings.httpHost, port: port, registry: metrics,
                                                 endpoint: endpoint, logger: logger)
            try await server.bind()
            services.append(.init(service: server, serviceName: "OperationsServer"))
        }
        services.append(.init(service: endpoint, serviceName: "SagaEndpoint"))

        if let watch = ParentWatch.fromEnvironment(logger: logger) {
            // Started by `demo`: stop when the demo is gone (shut down last-added first, so it goes at once).
            services.append(.init(service: watch, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "ParentWatch"))
        }
        // A shutdown that hangs (a broker that never answers) turns into cancellation after the limit, which
        // the deadline keeps and logs (not the group's `maximumGracefulShutdownDuration`, which is silent).
        // Added last, it hears of the graceful shutdown first.
        let deadline = ShutdownDeadline(seconds: settings.shutdownTimeout, logger: logger)
        services.append(.init(service: deadline, serviceName: "ShutdownDeadline"))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        // Notices, as the endpoint's own lifecycle lines: seen with the README's `"log-level": "notice"`.
        logger.notice("starting endpoint", metadata: [
            "amqp.url": "\(settings.redactedAMQPURL)", "queues": "\(queues.joined(separator: ","))",
            "database": "\(settings.databasePath)", "pid": "\(ProcessInfo.processInfo.processIdentifier)",
            "shutdown_timeout_seconds": "\(ShutdownDeadline.describe(settings.shutdownTimeout))",
        ])
        // Outside the group: it must keep listening during the graceful shutdown the first signal starts.
        let secondSignal = SecondSignalForcesExit.watch(logger: logger)
        defer { secondSignal.cancel() }
        let cutShort = try await deadline.run(group)
        // Exit status 0 either way: what the cancellation cut short went back to its queues and is
        // deduplicated when it comes round again, so nothing is lost; the warning above says it happened.
        // (The endpoint logs its own "endpoint stopped"; this line is the process's last.)
        logger.notice("exiting", metadata: ["shutdown": "\(cutShort ? "cut short at the time limit" : "completed")"])
    }

    /// The base of the endpoint's connection names (`<name>-consume`, `<name>-publish`): the URL's
    /// `connection_name` when it has one, else the command's own name. Before, the URL's was ignored, so
    /// endpoints told apart that way all showed up as saga-endpoint-consume in the management UI.
    static func connectionName(url: String, default name: String) -> String {
        (try? BrokerConnection.configuration(url: url, name: name))?.connectionName ?? name
    }
}
