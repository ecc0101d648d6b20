import AMQPTransport
import ArgumentParser
import Foundation
import Logging

// Options shared by the subcommands. Each falls back to an environment variable, then to a default;
// values are checked in `validate()` so a bad one is reported (as a ValidationError) before any work.
// The config file is a layer below the environment (see EndpointSettings, ToolSettings), read when the
// command runs; a bad value there is reported the same way (SettingErrors.swift).

/// `--amqp-url` / `AMQP_URL`.
struct AMQPOptions: ParsableArguments {
    static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

    @Option(name: .customLong("amqp-url"),
            help: ArgumentHelp("Broker URI, e.g. amqp://user:pass@host:5672/vhost (env AMQP_URL; default \(defaultURL)).",
                               valueName: "uri"))
    var urlOption: String?

    /// The URI to connect to: the option, else `AMQP_URL`, else the default.
    var url: String { urlOption ?? Environment.value("AMQP_URL") ?? Self.defaultURL }

    /// Where the URI came from, for error messages.
    private var source: String { urlOption != nil ? "--amqp-url" : (Environment.value("AMQP_URL") != nil ? "AMQP_URL" : "default URL") }

    /// The parsed URI (valid after `validate()`).
    var configuration: AMQPConfiguration {
        get throws { try AMQPConfiguration(url: url) }
    }

    /// The URI with its password hidden, for messages.
    var redactedURL: String { Self.redacted(url) }

    /// `url` with its password hidden, for messages.
    static func redacted(_ url: String) -> String {
        (try? AMQPConfiguration(url: url).redactedURL) ?? AMQPConfiguration.redact(url)
    }

    func validate() throws {
        do {
            _ = try AMQPConfiguration(url: url)
        } catch {
            // AMQPError's message already hides the password.
            throw ValidationError("invalid \(source): \(error)")
        }
    }
}

/// `--database` / `SAGA_DATABASE`, default `saga.sqlite`.
struct DatabaseOptions: ParsableArguments {
    static let defaultPath = "saga.sqlite"

    @Option(name: .customLong("database"),
            help: ArgumentHelp("SQLite file of the saga state (env SAGA_DATABASE; default \(defaultPath)).", valueName: "path"))
    var pathOption: String?

    static let environmentVariable = "SAGA_DATABASE"

    var path: String { pathOption ?? Environment.value(Self.environmentVariable) ?? Self.defaultPath }

    /// Where the saga database comes from when the config file is read too (`run`, `sagas`).
    var source: EndpointSettings.DatabaseSource {
        .init(flag: pathOption, environmentVariable: Self.environmentVariable, defaultPath: Self.defaultPath)
    }

    func validate() throws {
        try DatabaseOptions.check(path: path, source: pathOption != nil ? "--database" : Self.environmentVariable)
    }

    static func check(path: String, source: String) throws {
        guard !path.isEmpty else { throw ValidationError("\(source) must not be empty") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ValidationError("\(source) '\(path)' is a directory, not an SQLite file")
        }
    }
}

/// `--log-level` / `LOG_LEVEL`, then the config file (LogLevelSetting.swift), default info.
struct LoggingOptions: ParsableArguments {
    static let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: "|")

    @Option(name: .customLong("log-level"),
            help: ArgumentHelp("\(levels) (env LOG_LEVEL; default info).", valueName: "level"))
    var levelOption: String?

    @Option(name: .customLong("log-format"),
            help: ArgumentHelp("\(LogFormat.names): text lines, or one JSON object per line (env LOG_FORMAT; default text).",
                               valueName: "format"))
    var formatOption: String?

    /// The flag's or `LOG_FORMAT`'s format (checked in `validate`), else text.
    var format: LogFormat {
        (formatOption ?? Environment.value("LOG_FORMAT")).flatMap { LogFormat(rawValue: $0.lowercased()) } ?? .text
    }

    var level: Logger.Level {
        (levelOption ?? Environment.value("LOG_LEVEL")).flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
    }

    func validate() throws {
        if let text = formatOption ?? Environment.value("LOG_FORMAT"), LogFormat(rawValue: text.lowercased()) == nil {
            let source = formatOption != nil ? "--log-format" : "LOG_FORMAT"
            throw ValidationError("invalid \(source) '\(text)': expected one of \(LogFormat.names)")
        }
        guard let text = levelOption ?? Environment.value("LOG_LEVEL") else { return }
        guard Logger.Level(rawValue: text.lowercased()) != nil else {
            let source = levelOption != nil ? "--log-level" : "LOG_LEVEL"
            throw ValidationError("invalid \(source) '\(text)': expected one of \(Self.levels)")
        }
    }

    /// Installs the process-wide log handler (stderr, at the flag's or `LOG_LEVEL`'s level) and returns a
    /// logger. Call once, from the command that runs. It ignores the config file: for `demo`, which reads
    /// none; the other commands layer it (`OperatorLogging`, EndpointSettings).
    func bootstrap(label: String = "saga-endpoint") -> Logger {
        Self.bootstrap(level: level, format: format, label: label)
    }

    /// Installs the process-wide log handler at `level` in `format` (for commands whose settings are
    /// layered, see `EndpointSettings`).
    static func bootstrap(level: Logger.Level, format: LogFormat = .text, label: String = "saga-endpoint") -> Logger {
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label, format: format, level: level) }
        FinalErrorRecord.logHandlerInstalled(format)
        ConfigFileExposure.logHandlerInstalled()
        return Logger(label: label)
    }
}

enum Environment {
    /// An environment variable, nil when unset or empty.
    static func value(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
}

/// A failure reported to the user as one clear message (ArgumentParser prints "Error: …" and exits 1).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Writes a line to standard error (for user-facing notices that are not log records).
func printError(_ text: String) {
    StandardStreams.write(text + "\n", to: FileHandle.standardError)
}

/// Parses a duration given in seconds (fractions allowed), for options like `--bank-timeout 2.5`.
///
/// Capped at `longestDuration` (a year): the options only check that the number is positive and finite, and
/// the milliseconds of `--bank-timeout 1e300` (or of `1e16`, an operator's "never") did not fit an Int64, so
/// `run`, `transfer` and `demo` died of a trap (SIGILL) instead of starting. A year outlasts any run of the
/// process, so a bigger number still means "never" in practice, as ShutdownDeadline already read it.
func secondsDuration(_ seconds: Double) -> Duration {
    .milliseconds(Int64((min(seconds, longestDuration) * 1000).rounded()))
}

/// The longest duration `secondsDuration` gives, in seconds: a year.
let longestDuration: Double = 365 * 86_400
