import Synchronization

/// The command's last word on a failure ("Error: …", printed just before it exits) in the log's format.
///
/// With `--log-format json` every other line on stderr was a JSON record, but this one was ArgumentParser's
/// plain text: a log collector parsing stderr as JSON dropped it or stored it unparsed, and it is the line
/// that says why `errors replay`, `sagas show` or `topology verify` failed. Once the command has installed
/// its log handler in JSON, the line is a record like the others (level `error`, the text as `message`,
/// the exit status as `exit_status`). Before that (a bad flag, an unreadable config file: the format
/// itself may be what is wrong) it stays text, with the usage line ArgumentParser prints.
enum FinalErrorRecord {
    private static let installed = Mutex<LogFormat?>(nil)

    /// Called when the process-wide log handler is installed.
    static func logHandlerInstalled(_ format: LogFormat) {
        installed.withLock { $0 = format }
    }

    /// `report` (one or more lines starting with "Error: ") as the line to print for exit status `status`.
    static func render(_ report: String, status: Int32) -> String {
        guard installed.withLock({ $0 }) == .json else { return report }
        let message = report.hasPrefix("Error: ") ? String(report.dropFirst("Error: ".count)) : report
        return ConsoleLogHandler.line(.json, time: ConsoleLogHandler.timestamp(), level: .error, label: "saga-endpoint",
                                      message: message, source: "saga_endpoint",
                                      metadata: ["exit_status": "\(status)"])
    }
}
