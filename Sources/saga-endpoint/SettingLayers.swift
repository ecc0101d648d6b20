import ArgumentParser
import Foundation

/// `--config` / `SAGA_CONFIG`: the optional JSON config file of `run` and `bank`; the operator commands
/// read their broker URL, database and log level from it too (ToolSettings.swift, LogLevelSetting.swift).
struct ConfigOptions: ParsableArguments {
    static let environmentVariable = "SAGA_CONFIG"

    @Option(name: .customLong("config"),
            help: ArgumentHelp("JSON file of settings, below flags and environment variables (env SAGA_CONFIG; default none).",
                               valueName: "path"))
    var pathOption: String?
}

/// Where a setting's value can come from, highest first: a flag, an environment variable, the config
/// file, the default. The environment is passed in (not read from the process) so that the precedence can
/// be tested without changing the test process's environment.
struct SettingLayers: Sendable {
    let environment: [String: String]
    let file: ConfigFile?

    /// Loads the config file named by `--config`, else by `SAGA_CONFIG`, if any. A file that is named but
    /// missing, unreadable or invalid is an error.
    init(configPath: String?, section: ConfigSection,
         environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigFileError) {
        self.environment = environment.filter { !$0.value.isEmpty }
        let path = configPath ?? self.environment[ConfigOptions.environmentVariable]
        self.file = try path.map { path throws(ConfigFileError) in try ConfigFile(path: path, section: section) }
    }

    /// A value and the layer it came from.
    struct Resolved<Value> {
        var value: Value
        /// `--prefetch`, `HTTP_PORT`, `'bank.prefetch' in config file x.json`, or `default`, for messages.
        var source: String
    }

    /// The first of: the flag, the environment variable (parsed with `parse`; an unparseable value is an
    /// error saying what was `expected`), the config file (already checked when it was loaded), the default.
    func resolve<Value>(flag: Value?, flagName: String, environmentVariable: String? = nil,
                        parse: (String) -> Value? = { _ in nil }, expected: String = "",
                        fromFile: (ConfigFile) -> Value?, key: ConfigKey, default defaultValue: Value) throws -> Resolved<Value> {
        if let flag { return Resolved(value: flag, source: flagName) }
        if let environmentVariable, let text = environment[environmentVariable] {
            guard let value = parse(text) else {
                throw ValidationError("invalid \(environmentVariable) '\(text)': expected \(expected)")
            }
            return Resolved(value: value, source: environmentVariable)
        }
        if let configFile = file, let value = fromFile(configFile), let origin = configFile.origin(of: key) {
            return Resolved(value: value, source: "'\(origin)' in config file \(configFile.path)")
        }
        return Resolved(value: defaultValue, source: "default")
    }
}
