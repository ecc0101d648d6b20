import AMQPTransport
import ArgumentParser
import Foundation

// The broker and the database of the operator commands (`errors`, `sagas`, `topology`, `transfer`), and
// their log level (LogLevelSetting.swift), come from the same layers as `run`'s: the flag, the
// environment variable, the config file (`--config` or `SAGA_CONFIG`: its top level and its `run`
// section, since these commands look at what `run` works on), the default. An operator who keeps the
// broker URL in the config file does not repeat it for every command. (`run` and `bank` resolve these
// with the same functions, in `EndpointSettings`.)

/// An operator command that talks to the broker.
protocol BrokerCommand {
    var amqp: AMQPOptions { get }
    var config: ConfigOptions { get }
}

extension BrokerCommand {
    /// The broker URL after layering (see above).
    func brokerURL(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try amqp.resolvedURL(config: config, environment: environment)
    }
}

extension AMQPOptions {
    /// The broker URL for an operator command; an invalid one, or a bad config file, throws naming its source.
    func resolvedURL(config: ConfigOptions,
                     environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try resolveURL(SettingLayers(configPath: config.pathOption, section: .run, environment: environment))
    }

    /// The flag, `AMQP_URL`, the file's `amqp-url`, the default; checked to parse.
    func resolveURL(_ layers: SettingLayers) throws -> String {
        let url = try layers.resolve(flag: urlOption, flagName: "--amqp-url", environmentVariable: "AMQP_URL",
                                     parse: { $0 }, fromFile: { $0.string(.amqpURL) }, key: .amqpURL,
                                     default: Self.defaultURL)
        let configuration: AMQPConfiguration
        do {
            configuration = try AMQPConfiguration(url: url.value)
        } catch {
            // AMQPError's message already hides the password.
            throw ValidationError("invalid \(url.source): \(error)")
        }
        // The TLS files are a setting too: found missing only when connecting, they stopped the command with
        // status 1 (and `run` after it had opened its database and HTTP port), not as a bad setting.
        if let tls = configuration.tls {
            for (name, path) in [("cacertfile", tls.caCertificateFile), ("certfile", tls.certificateFile),
                                 ("keyfile", tls.keyFile)] {
                guard let path else { continue }
                // A directory is "readable" too, and failed only when connecting.
                var isDirectory: ObjCBool = false
                let isFile = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
                if !isFile || !FileManager.default.isReadableFile(atPath: path) {
                    throw ValidationError("invalid \(url.source): \(name) \(path) cannot be read")
                }
            }
        }
        return url.value
    }
}

extension DatabaseOptions {
    /// The saga database for an operator command (`sagas`): the flag, `SAGA_DATABASE`, the file's
    /// `run.database`, the default.
    func resolvedPath(config: ConfigOptions,
                      environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let layers = try SettingLayers(configPath: config.pathOption, section: .run, environment: environment)
        return try Self.resolve(source, layers)
    }

    /// The flag, the environment variable, the file's `database` (of the layers' section), the default;
    /// checked not to be a directory.
    static func resolve(_ source: EndpointSettings.DatabaseSource, _ layers: SettingLayers) throws -> String {
        let path = try layers.resolve(flag: source.flag, flagName: "--database",
                                      environmentVariable: source.environmentVariable, parse: { $0 },
                                      fromFile: { $0.string(.database) }, key: .database, default: source.defaultPath)
        try check(path: path.value, source: path.source)
        return path.value
    }
}
