import Logging
import Synchronization

/// The command's last word on a failure ("Error: …", printed just before it exits) in the log's format.
///
/// With `--log-format json` every other line on stderr was a JSON record, but this one was ArgumentParser's
/// plain text: a log collector parsing stderr as JSON dropped it or stored it unparsed, and it is the line
/// that says why `errors replay`, `sagas show` or `topology verify` failed. Once the command has installed
/// its log handler in JSON, the line is a record like the others (level `error`, the text as `message`,
/// the exit status as `exit_status`). Before that (a bad flag, an unreadable config file) the format is the
/// one the command line or `LOG_FORMAT` asks for (`requested`): a service started with `--log-format json`
/// and a mistyped `--prefetch abc` printed ArgumentParser's four lines of text into a JSON log pipeline.
/// When neither asks for JSON, or the format given is itself what is wrong, it stays text, with the usage
/// line ArgumentParser prints.
///
/// `run` and `bank` end with a record of their own, `exiting` (critical, with the error, when one stopped
/// them). In JSON that record and the final error record were two records for one failure, which an alert
/// counted twice: there, `exiting` is the final record (`stoppedByError`), with the exit status added.
enum FinalErrorRecord {
    private static let installed = Mutex<LogFormat?>(nil)

    /// The record that stands for the final error line, set by `stoppedByError`.
    private struct Stop: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private static let stop = Mutex<Stop?>(nil)

    /// The log's format, else the one asked for while the log is not set up yet.
    private static var format: LogFormat? {
        installed.withLock { $0 } ?? requestedFormat.withLock { $0 }
    }

    /// The format asked for on the command line or in `LOG_FORMAT`, for a failure before the log handler is
    /// installed (`requested`).
    private static let requestedFormat = Mutex<LogFormat?>(nil)

    /// Called when the process-wide log handler is installed.
    static func logHandlerInstalled(_ format: LogFormat) {
        installed.withLock { $0 = format }
    }

    /// Called with the command line before it is parsed: the format it asks for, as the command would
    /// resolve it (the last `--log-format`, else a non-empty `LOG_FORMAT`), if that is a valid one. The
    /// config file's `log-format` is not read here: the file may be what failed.
    static func requested(arguments: [String], environment: [String: String]) {
        var given: String?
        var rest = arguments[...]
        while let argument = rest.popFirst(), argument != "--" {
            if argument == "--log-format" {
                given = rest.popFirst()
            } else if argument.hasPrefix("--log-format=") {
                given = String(argument.dropFirst("--log-format=".count))
            }
        }
        let text = given ?? environment["LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0 }
        requestedFormat.withLock { $0 = text.flatMap { LogFormat(rawValue: $0.lowercased()) } }
    }

    /// Logs the record of a command that an error stops (`exiting`), or, in JSON, keeps it to be the final
    /// error record (`render`), so that the failure is one record with the error's fields and the exit status.
    static func stoppedByError(_ logger: Logger, level: Logger.Level, _ message: String, metadata: Logger.Metadata) {
        guard format == .json else {
            logger.log(level: level, "\(message)", metadata: metadata)
            return
        }
        stop.withLock { $0 = Stop(level: level, message: message, metadata: metadata) }
    }

    /// `report` (one or more lines starting with "Error: ") as the line to print for exit status `status`.
    static func render(_ report: String, status: Int32) -> String {
        guard format == .json else { return report }
        if let stop = stop.withLock({ $0.take() }) {
            return ConsoleLogHandler.line(.json, time: ConsoleLogHandler.timestamp(), level: stop.level,
                                          label: "saga-endpoint", message: stop.message, source: "saga_endpoint",
                                          metadata: stop.metadata.merging(["exit_status": "\(status)"]) { $1 })
        }
        let message = report.hasPrefix("Error: ") ? String(report.dropFirst("Error: ".count)) : report
        return ConsoleLogHandler.line(.json, time: ConsoleLogHandler.timestamp(), level: .error, label: "saga-endpoint",
                                      message: message, source: "saga_endpoint",
                                      metadata: ["exit_status": "\(status)"])
    }
}
