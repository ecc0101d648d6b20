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

    @OptionGroup var amqp: AMQPOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var endpoint: EndpointOptions

    @Option(help: ArgumentHelp("Seconds a transfer waits for a bank reply before re-sending the command.", valueName: "seconds"))
    var bankTimeout: Double = 10

    func validate() throws {
        guard bankTimeout.isFinite, bankTimeout > 0 else { throw ValidationError("--bank-timeout must be a positive number of seconds") }
    }

    func run() async throws {
        let logger = logging.bootstrap()
        let queues = [MoneyTransferApp.transfersQueue, MoneyTransferApp.payoutsQueue]
        let registry = MoneyTransferApp.registry(bankTimeout: secondsDuration(bankTimeout))
        try await EndpointHost.run(
            queues: queues, databasePath: database.path, connectionName: "saga-endpoint", registry: registry,
            amqp: amqp, options: endpoint, logger: logger)
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

    @OptionGroup var amqp: AMQPOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var endpoint: EndpointOptions

    @Option(name: .customLong("database"),
            help: ArgumentHelp("SQLite file of the bank's inbox (env BANK_DATABASE; default bank.sqlite).", valueName: "path"))
    var databaseOption: String?
    @Option(help: "Fee of a debit, in minor units.") var debitFee = 25
    @Option(help: "Fee of a credit, in minor units.") var creditFee = 15
    @Option(help: "Fee of a refund, in minor units.") var refundFee = 10
    @Option(help: ArgumentHelp("Accounts whose credits are rejected (comma-separated).", valueName: "a,b"))
    var closedAccounts: String = ""
    @Option(help: ArgumentHelp("Accounts whose debits are rejected (comma-separated).", valueName: "c,d"))
    var underfundedAccounts: String = ""
    @Option(help: "Accounts starting with this are closed (empty: none).") var closedPrefix = "closed-"
    @Option(help: "Accounts starting with this are underfunded (empty: none).") var underfundedPrefix = "poor-"

    var databasePath: String { databaseOption ?? Environment.value("BANK_DATABASE") ?? "bank.sqlite" }

    func validate() throws {
        try DatabaseOptions.check(path: databasePath, source: databaseOption != nil ? "--database" : "BANK_DATABASE")
        for (name, fee) in [("--debit-fee", debitFee), ("--credit-fee", creditFee), ("--refund-fee", refundFee)] where fee < 0 {
            throw ValidationError("\(name) must not be negative")
        }
    }

    static func accounts(_ list: String) -> Set<String> {
        Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    }

    var simulator: BankSimulator {
        BankSimulator(
            debitFee: debitFee, creditFee: creditFee, refundFee: refundFee,
            closedAccounts: Self.accounts(closedAccounts), underfundedAccounts: Self.accounts(underfundedAccounts),
            closedAccountPrefix: closedPrefix.isEmpty ? nil : closedPrefix,
            underfundedAccountPrefix: underfundedPrefix.isEmpty ? nil : underfundedPrefix)
    }

    func run() async throws {
        let logger = logging.bootstrap()
        try await EndpointHost.run(
            queues: [MoneyTransferApp.bankQueue], databasePath: databasePath, connectionName: "saga-endpoint-bank",
            registry: MoneyTransferApp.bankRegistry(simulator), amqp: amqp, options: endpoint, logger: logger)
    }
}

/// Options of `run` and `bank`.
struct EndpointOptions: ParsableArguments {
    @Option(help: "Unacknowledged deliveries in flight per input queue.") var prefetch: UInt16 = 200
    @Option(help: "Messages handled per SQLite transaction.") var batchSize = 100
    @Flag(inversion: .prefixedNo, help: "Declare the topology (idempotent) before starting.")
    var declareTopology = true
    @Option(help: ArgumentHelp("Serve /metrics, /health/live and /health/ready on this port (off when not given; env HTTP_PORT).", valueName: "port"))
    var httpPort: Int?
    @Option(help: "Address of the HTTP server.") var httpHost = "127.0.0.1"

    var effectiveHTTPPort: Int? { httpPort ?? Environment.value("HTTP_PORT").flatMap(Int.init) }
    @OptionGroup var topology: TopologyOptions

    func validate() throws {
        guard prefetch > 0 else { throw ValidationError("--prefetch must be at least 1") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1") }
        if let text = Environment.value("HTTP_PORT"), httpPort == nil, Int(text) == nil {
            throw ValidationError("invalid HTTP_PORT '\(text)': expected a port number")
        }
        if let port = effectiveHTTPPort, !(0...65535).contains(port) {
            throw ValidationError("--http-port must be between 0 and 65535")
        }
    }
}

enum EndpointHost {
    /// Declares the topology, then runs one endpoint in a ServiceGroup that shuts it down gracefully on
    /// SIGTERM or SIGINT (the command then exits 0).
    static func run(
        queues: [String], databasePath: String, connectionName: String, registry: HandlerRegistry,
        amqp: AMQPOptions, options: EndpointOptions, logger: Logger
    ) async throws {
        if options.declareTopology {
            let topology = try options.topology.load(logger: logger)
            let connection = try await BrokerConnection.open(amqp, name: "\(connectionName)-topology", logger: logger)
            do {
                try await TopologyActions.declare(topology, on: connection, logger: logger)
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
        }
        var configuration = EndpointConfiguration(amqpURL: amqp.url, inputQueues: queues, databasePath: databasePath)
        configuration.prefetch = options.prefetch
        configuration.batchSize = options.batchSize
        configuration.connectionName = connectionName
        let metrics = OperationsWiring.bootstrapMetrics()
        let endpoint = SagaEndpoint(configuration: configuration, registry: registry, logger: logger)
        var services = [ServiceGroupConfiguration.ServiceConfiguration(service: endpoint, serviceName: "SagaEndpoint")]
        if let port = options.effectiveHTTPPort {
            services.append(.init(service: OperationsWiring.server(host: options.httpHost, port: port, registry: metrics,
                                                                   endpoint: endpoint, logger: logger),
                                  serviceName: "OperationsServer"))
        }

        if let watch = ParentWatch.fromEnvironment(logger: logger) {
            // Started by `demo`: stop when the demo is gone (shut down last-added first, so it goes at once).
            services.append(.init(service: watch, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "ParentWatch"))
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A shutdown that hangs (a broker that never answers) turns into cancellation after this.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(30)
        let group = ServiceGroup(configuration: groupConfiguration)
        logger.info("starting endpoint", metadata: [
            "amqp.url": "\(amqp.redactedURL)", "queues": "\(queues.joined(separator: ","))",
            "database": "\(databasePath)", "pid": "\(ProcessInfo.processInfo.processIdentifier)",
        ])
        // Outside the group: it must keep listening during the graceful shutdown the first signal starts.
        let secondSignal = SecondSignalForcesExit.watch(logger: logger)
        defer { secondSignal.cancel() }
        try await group.run()
        logger.info("endpoint stopped")
    }
}
