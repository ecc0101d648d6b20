import AMQPTransport
import ArgumentParser
import Foundation
import Logging
import SagaEndpoint

/// `topology declare|verify|export`.
struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Declare, verify or export the broker topology (RabbitMQ definitions JSON files).",
        subcommands: [Declare.self, Verify.self, Export.self]
    )

    struct Declare: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "Declare every exchange, queue and binding (idempotent).")
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var topologyOptions: TopologyOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = try bootstrapLogging()
            let topology = try topologyOptions.load(config: config, logger: logger)
            let url = try brokerURL()
            try await TopologyActions.declare(topology, url: url, connectionName: "saga-endpoint-topology", logger: logger)
            printLine("declared \(topology.exchanges.count) exchanges, \(topology.queues.count) queues, "
                + "\(topology.bindings.count) bindings on \(AMQPOptions.redacted(url))")
        }
    }

    struct Verify: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "Check that every exchange and queue exists with the same settings (changes nothing).",
            discussion: """
                Exchanges and queues are checked with passive declares, then declared again with the same \
                settings: that is a no-op when they match and a 406 PRECONDITION_FAILED when they differ. \
                Bindings cannot be inspected over AMQP and are not checked. Exits 1 naming everything missing \
                or different.
                """)
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var topologyOptions: TopologyOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = try bootstrapLogging()
            let topology = try topologyOptions.load(config: config, logger: logger)
            let url = try brokerURL()
            let connection = try await BrokerConnection.open(url: url, name: "saga-endpoint-verify", logger: logger)
            let problems = await TopologyActions.verify(topology, on: connection)
            await connection.close()
            for problem in problems { printLine(problem) }
            if problems.isEmpty {
                printLine("ok: \(topology.exchanges.count) exchanges and \(topology.queues.count) queues match on "
                    + "\(AMQPOptions.redacted(url)) (\(topology.bindings.count) bindings not checkable over AMQP)")
            } else {
                printError("\(problems.count) problem(s) on \(AMQPOptions.redacted(url))")
                throw ExitCode.failure
            }
        }
    }

    struct Export: ParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "Print the merged definitions as one JSON document for `rabbitmqctl import_definitions`.",
            discussion: """
                The definitions name the vhost of the broker URL (--amqp-url, AMQP_URL or the config file; \
                / by default), where `declare` would create them. Nothing is sent to the broker.
                """)
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var topologyOptions: TopologyOptions
        // It logs only a warning about definitions keys it ignores, but takes the log settings every
        // command takes (README): without them a wrapper passing `--log-level` to each command got exit 64.
        @OptionGroup var logging: LoggingOptions

        func run() throws {
            let logger = try bootstrapLogging()
            // Not FileHandle.write(_: Data), which traps when stdout cannot be written (StandardStreams).
            StandardStreams.write(String(decoding: try definitions(logger: logger), as: UTF8.self) + "\n",
                                  to: FileHandle.standardOutput)
        }

        /// Before, every definition said vhost "/", so an endpoint's topology in another vhost was
        /// imported into the default one.
        func definitions(environment: [String: String] = ProcessInfo.processInfo.environment,
                         logger: Logger? = nil) throws -> Data {
            let topology = try topologyOptions.load(config: config, logger: logger, environment: environment)
            let vhost = try AMQPConfiguration(url: brokerURL(environment: environment)).vhost
            return try topology.exportJSON(vhost: vhost)
        }
    }
}

/// `--topology-dir`.
struct TopologyOptions: ParsableArguments {
    @Option(name: .customLong("topology-dir"),
            help: ArgumentHelp("Folder of RabbitMQ definitions *.json (default: ./topology, else the package's topology folder).",
                               valueName: "dir"))
    var directory: String?

    func validate() throws {
        if let directory, (try? Topology.directory(explicit: directory)) == nil {
            throw ValidationError("--topology-dir \(directory) is not a directory")
        }
    }

    /// The merged definitions of `--topology-dir`, else of the config file's `topology-dir` (as `run` reads
    /// it), else of the usual places; the built-in reference topology when no folder is found. Before,
    /// `topology verify --config` ignored the file's folder and checked other definitions than the ones
    /// `run` declares with the same file.
    func load(config: ConfigOptions, logger: Logger?,
              environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Topology {
        try Self.load(directory: resolvedDirectory(config: config, environment: environment), logger: logger)
    }

    /// `--topology-dir`, else the config file's `topology-dir` (top level or the `run` section), else nil.
    func resolvedDirectory(config: ConfigOptions,
                           environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        try resolvedDirectory(layers: SettingLayers(configPath: config.pathOption, section: .run, environment: environment))
    }

    /// `--topology-dir`, else the file's `topology-dir` in `layers` (as `run` and `bank` read it), else nil;
    /// a folder that does not exist is an error naming where it came from.
    func resolvedDirectory(layers: SettingLayers) throws -> String? {
        let resolved = try layers.resolve(flag: directory.map { Optional($0) }, flagName: "--topology-dir",
                                          fromFile: { $0.string(.topologyDir).map { Optional($0) } }, key: .topologyDir,
                                          default: nil)
        if let folder = resolved.value, (try? Topology.directory(explicit: folder)) == nil {
            throw ValidationError("\(resolved.source) names \(folder), which is not a directory")
        }
        return resolved.value
    }

    /// The definitions of `directory` (nil: the usual places), as `load(logger:)`.
    static func load(directory: String?, logger: Logger?) throws -> Topology {
        do {
            let topology = try Topology.resolve(explicit: directory)
            if !topology.ignoredKeys.isEmpty {
                let message = "ignoring definitions keys \(topology.ignoredKeys.joined(separator: ", ")) (only exchanges, queues, bindings are used)"
                if let logger { logger.warning("\(message)") } else { printError("warning: \(message)") }
            }
            logger?.debug("topology loaded", metadata: ["topology.sources": "\(topology.sources.joined(separator: ", "))"])
            return topology
        } catch let error as TopologyError {
            throw CLIError(error.description)
        }
    }
}

enum BrokerConnection {
    /// Connects, or fails at once when the broker cannot be reached (a one-shot command); later losses are
    /// recovered. (`run` and `bank` wait for the broker instead: the endpoint connects itself.)
    static func open(url: String, name: String, logger: Logger) async throws -> AMQPConnection {
        let configuration = try configuration(url: url, name: name)
        do {
            return try await AMQPConnection.connect(configuration, logger: logger)
        } catch {
            throw CLIError("cannot connect to \(configuration.redactedURL): \(error)")
        }
    }

    /// The URL's settings; the connection is named `name` unless the URL gives a `connection_name`.
    static func configuration(url: String, name: String) throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(url: url)
        if configuration.connectionName?.isEmpty ?? true { configuration.connectionName = name }
        return configuration
    }
}

/// Declaring and verifying a topology on a connection.
enum TopologyActions {
    /// Names starting with this are reserved by RabbitMQ: they can only be checked, not declared.
    static let reservedPrefix = EndpointTopology.reservedPrefix

    /// Connects, declares, and closes the connection.
    static func declare(_ topology: Topology, url: String, connectionName: String, logger: Logger) async throws {
        let connection = try await BrokerConnection.open(url: url, name: connectionName, logger: logger)
        do {
            try await declare(topology, on: connection, logger: logger)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    /// Declares everything, in order: exchanges, queues, bindings (`EndpointTopology.declare`). Tries every
    /// item and throws one error listing all that failed.
    static func declare(_ topology: Topology, on connection: AMQPConnection, logger: Logger) async throws {
        do {
            try await topology.endpointTopology.declare(on: connection)
        } catch {
            throw CLIError(error.description)
        }
        logger.info("topology declared", metadata: [
            "exchanges": "\(topology.exchanges.count)", "queues": "\(topology.queues.count)",
            "bindings": "\(topology.bindings.count)",
        ])
    }

    /// Checks every exchange and queue; returns one line per problem (empty when all match).
    static func verify(_ topology: Topology, on connection: AMQPConnection) async -> [String] {
        var problems: [String] = []
        for exchange in topology.exchanges {
            do {
                try await connection.checkExchange(exchange.name)
            } catch let error as AMQPError where error.replyCode == 404 {
                problems.append("missing exchange '\(exchange.name)'")
                continue
            } catch {
                problems.append("cannot check exchange '\(exchange.name)': \(error)")
                continue
            }
            guard !exchange.name.hasPrefix(reservedPrefix) else { continue }
            // It exists: an identical declare is a no-op, a different one fails with 406.
            do {
                try await connection.declareExchange(exchange)
            } catch let error as AMQPError where error.replyCode == 406 {
                problems.append("different exchange '\(exchange.name)': \(error.message)")
            } catch {
                problems.append("cannot check exchange '\(exchange.name)': \(error)")
            }
        }
        for queue in topology.queues {
            do {
                _ = try await connection.checkQueue(queue.name)
            } catch let error as AMQPError where error.replyCode == 404 {
                problems.append("missing queue '\(queue.name)'")
                continue
            } catch {
                problems.append("cannot check queue '\(queue.name)': \(error)")
                continue
            }
            do {
                try await connection.declareQueue(queue)
            } catch let error as AMQPError where error.replyCode == 406 {
                problems.append("different queue '\(queue.name)': \(error.message)")
            } catch let error as AMQPError where error.replyCode == 405 {
                problems.append("queue '\(queue.name)' is exclusive to another connection: \(error.message)")
            } catch {
                problems.append("cannot check queue '\(queue.name)': \(error)")
            }
        }
        // A binding needs its source and destination; that much can be checked.
        let exchangeNames = Set(topology.exchanges.map(\.name)), queueNames = Set(topology.queues.map(\.name))
        for binding in topology.bindings {
            if !exchangeNames.contains(binding.source), !binding.source.hasPrefix(reservedPrefix) {
                problems.append("binding \(describe(binding)): source exchange '\(binding.source)' is not in the definitions")
            }
            let known = binding.destinationKind == .queue ? queueNames : exchangeNames
            if !known.contains(binding.destination) {
                problems.append("binding \(describe(binding)): destination \(binding.destinationKind.rawValue) '\(binding.destination)' is not in the definitions")
            }
        }
        return problems
    }

    static func describe(_ binding: BindingDeclaration) -> String {
        "'\(binding.source)' → \(binding.destinationKind.rawValue) '\(binding.destination)' key '\(binding.routingKey)'"
    }
}
