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
        let flag = try levelOption.map { text in
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ValidationError("invalid --log-level '\(text)': expected one of \(Self.levels)")
            }
            return level
        }
        return try layers.resolve(
            flag: flag, flagName: "--log-level", environmentVariable: "LOG_LEVEL",
            parse: { Logger.Level(rawValue: $0.lowercased()) }, expected: "one of \(Self.levels)",
            fromFile: { $0.string(.logLevel).flatMap { Logger.Level(rawValue: $0.lowercased()) } }, key: .logLevel,
            default: .info).value
    }

    /// The format from `layers` (flag, `LOG_FORMAT`, the file's `log-format`, text).
    func resolveFormat(_ layers: SettingLayers) throws -> LogFormat {
        let flag = try formatOption.map { text in
            guard let format = LogFormat(rawValue: text.lowercased()) else {
                throw ValidationError("invalid --log-format '\(text)': expected one of \(LogFormat.names)")
            }
            return format
        }
        return try layers.resolve(
            flag: flag, flagName: "--log-format", environmentVariable: "LOG_FORMAT",
            parse: { LogFormat(rawValue: $0.lowercased()) }, expected: "one of \(LogFormat.names)",
            fromFile: { $0.string(.logFormat).flatMap { LogFormat(rawValue: $0.lowercased()) } }, key: .logFormat,
            default: .text).value
    }
}

/// An operator command that logs (`errors`, `sagas`, `topology declare|verify`, `transfer`): its level is
/// layered as above.
protocol OperatorLogging {
    var logging: LoggingOptions { get }
    var config: ConfigOptions { get }
}

extension OperatorLogging {
    /// The level after layering, the file seen as `run` sees it.
    func logLevel(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger.Level {
        try logging.resolveLevel(SettingLayers(configPath: config.pathOption, section: .run, environment: environment))
    }

    /// Installs the process-wide log handler at that level and returns a logger. Call once, from `run()`.
    func bootstrapLogging(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger {
        let layers = try SettingLayers(configPath: config.pathOption, section: .run, environment: environment)
        return LoggingOptions.bootstrap(level: try logging.resolveLevel(layers), format: try logging.resolveFormat(layers))
    }
}
