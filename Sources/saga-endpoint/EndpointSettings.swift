import AMQPTransport
import ArgumentParser
import Foundation
import Logging
import MoneyTransfer

/// The settings of an endpoint command (`run` or `bank`) after layering flags over environment variables
/// over the config file over the defaults, every value checked.
struct EndpointSettings: Equatable, Sendable {
    var amqpURL: String
    var databasePath: String
    var logLevel: Logger.Level
    var logFormat: LogFormat
    var prefetch: UInt16
    var batchSize: Int
    var declareTopology: Bool
    /// Nil: no HTTP server.
    var httpPort: Int?
    var httpHost: String
    /// Nil: `./topology`, else the package's, else the built-in topology.
    var topologyDirectory: String?
    /// Seconds a graceful shutdown may take before what still runs is cancelled (`ShutdownDeadline`).
    var shutdownTimeout: Double = EndpointOptions.defaultShutdownTimeout

    /// The URL with its password hidden, for messages.
    var redactedAMQPURL: String { (try? AMQPConfiguration(url: amqpURL).redactedURL) ?? AMQPConfiguration.redact(amqpURL) }

    /// Where the database setting comes from for one command.
    struct DatabaseSource {
        var flag: String?
        var environmentVariable: String
        var defaultPath: String
    }
}

extension EndpointSettings {
    /// Resolves every setting (see `SettingLayers`); the first invalid one throws, naming its source.
    init(amqp: AMQPOptions, database: DatabaseSource, logging: LoggingOptions, endpoint: EndpointOptions,
         layers: SettingLayers) throws {
        amqpURL = try amqp.resolveURL(layers)
        databasePath = try DatabaseOptions.resolve(database, layers)

        logLevel = try logging.resolveLevel(layers)
        logFormat = try logging.resolveFormat(layers)

        prefetch = try layers.resolve(flag: endpoint.prefetch, flagName: "--prefetch",
                                      fromFile: { $0.integer(.prefetch).flatMap(UInt16.init(exactly:)) },
                                      key: .prefetch, default: EndpointOptions.defaultPrefetch).value
        batchSize = try layers.resolve(flag: endpoint.batchSize, flagName: "--batch-size",
                                       fromFile: { $0.integer(.batchSize) }, key: .batchSize,
                                       default: EndpointOptions.defaultBatchSize).value
        declareTopology = try layers.resolve(flag: endpoint.declareTopology, flagName: "--declare-topology",
                                             fromFile: { $0.bool(.declareTopology) }, key: .declareTopology,
                                             default: true).value
        httpPort = try layers.resolve(flag: endpoint.httpPort.map { Optional($0) }, flagName: "--http-port",
                                      environmentVariable: "HTTP_PORT",
                                      parse: { text -> Int?? in
                                          guard let port = Int(text), (0...65535).contains(port) else { return nil }
                                          return .some(port)
                                      },
                                      expected: "a port number from 0 to 65535",
                                      fromFile: { $0.integer(.httpPort).map { Optional($0) } }, key: .httpPort,
                                      default: nil).value
        httpHost = try layers.resolve(flag: endpoint.httpHost, flagName: "--http-host", fromFile: { $0.string(.httpHost) },
                                      key: .httpHost, default: EndpointOptions.defaultHTTPHost).value

        topologyDirectory = try endpoint.topology.resolvedDirectory(layers: layers)
        shutdownTimeout = try layers.resolve(flag: endpoint.shutdownTimeout, flagName: "--shutdown-timeout",
                                             fromFile: { $0.number(.shutdownTimeout) }, key: .shutdownTimeout,
                                             default: EndpointOptions.defaultShutdownTimeout).value
    }
}

/// `run`'s settings.
struct RunSettings: Equatable, Sendable {
    static let defaultBankTimeout: Double = 10

    var endpoint: EndpointSettings
    /// Seconds a transfer waits for a bank reply before re-sending the command.
    var bankTimeout: Double
}

/// `bank`'s settings.
struct BankSettings: Sendable {
    static let defaultDatabase = "bank.sqlite"

    var endpoint: EndpointSettings
    var simulator: BankSimulator
}
