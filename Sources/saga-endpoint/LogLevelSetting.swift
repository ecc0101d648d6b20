import ArgumentParser
import Foundation
import Logging

// The log level is layered like every other setting: `--log-level`, `LOG_LEVEL`, the config file's
// `log-level` (top level, or the command's section), `info`. `run` and `bank` resolve it with their other
// settings (EndpointSettings); the operator commands read the file's top level and its `run` section, as
// they do for the broker URL (ToolSettings.swift). Before, the operator commands skipped the file: with
// `"log-level": "error"` in it, `errors list --config` still logged "AMQP connected" at info.

extension LoggingOptions {
    /// The level from `layers`; a bad flag or `LOG_LEVEL` throws naming it (the file was checked when loaded).
    func resolveLevel(_ layers: SettingLayers) throws -> Logger.Level {
        try Self.resolve(levelOption, "--log-level", "LOG_LEVEL", names: Self.levels, key: .logLevel, default: .info,
                         layers) { Logger.Level(rawValue: $0.lowercased()) }
    }

    /// The format from `layers` (flag, `LOG_FORMAT`, the file's `log-format`, text).
    func resolveFormat(_ layers: SettingLayers) throws -> LogFormat {
        try Self.resolve(formatOption, "--log-format", "LOG_FORMAT", names: LogFormat.names, key: .logFormat,
                         default: .text, layers) { LogFormat(rawValue: $0.lowercased()) }
    }

    /// A setting named by one of `names` (case-insensitive), layered: the flag's text, the variable, the
    /// file's key, the default.
    private static func resolve<Value>(_ option: String?, _ flagName: String, _ environmentVariable: String,
                                       names: String, key: ConfigKey, default defaultValue: Value,
                                       _ layers: SettingLayers, parse: (String) -> Value?) throws -> Value {
        let flag = try option.map { text in
            guard let value = parse(text) else {
                throw ValidationError("invalid \(flagName) '\(text)': expected one of \(names)")
            }
            return value
        }
        return try layers.resolve(flag: flag, flagName: flagName, environmentVariable: environmentVariable,
                                  parse: parse, expected: "one of \(names)",
                                  fromFile: { $0.string(key).flatMap(parse) }, key: key, default: defaultValue).value
    }
}

/// An operator command that logs (`errors`, `sagas`, `topology`, `transfer`): its level is
/// layered as above.
protocol OperatorLogging {
    var logging: LoggingOptions { get }
    var config: ConfigOptions { get }
}

extension OperatorLogging {
    /// The settings' layers, the file seen as `run` sees it.
    private func layers(_ environment: [String: String]) throws -> SettingLayers {
        try SettingLayers(configPath: config.pathOption, section: .run, environment: environment)
    }

    /// The level after layering.
    func logLevel(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger.Level {
        try logging.resolveLevel(layers(environment))
    }

    /// Installs the process-wide log handler at that level and format and returns a logger. Call once,
    /// from `run()`.
    func bootstrapLogging(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger {
        let layers = try layers(environment)
        return LoggingOptions.bootstrap(level: try logging.resolveLevel(layers), format: try logging.resolveFormat(layers))
    }
}
