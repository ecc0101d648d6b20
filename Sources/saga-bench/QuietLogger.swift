import Logging

extension Logger {
    /// A logger for the bench's own connections, stores and endpoints: warnings and errors only, so that
    /// the report is not buried in per-run info lines.
    static func quiet(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        return logger
    }
}
