public import Logging
import Synchronization

/// Keeps what is logged through the loggers it makes, for tests that check what was reported (a warning
/// and its metadata) or show the log when they fail. One type for every test target: the transport's,
/// the store's and the endpoint's tests each had a capturing handler of their own.
public final class CapturedLog: Sendable {
    public struct Entry: Sendable {
        public var level: Logger.Level
        public var message: String
        /// The logger's metadata and the record's, as text.
        public var metadata: [String: String]

        /// `level message key=value …`, keys sorted: what `lines` and `tail` show.
        public var line: String {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(level) \(message) \(fields)"
        }
    }

    private let captured = Mutex<[Entry]>([])

    public init() {}

    /// A logger that records into this log, at `level` and above.
    public func logger(label: String, level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    /// Everything recorded so far, oldest first.
    public var entries: [Entry] { captured.withLock { $0 } }

    /// Everything recorded so far, one line per record.
    public var lines: [String] { entries.map(\.line) }

    /// The last `count` lines.
    public func tail(_ count: Int = 150) -> String {
        captured.withLock { $0.suffix(count).map(\.line).joined(separator: "\n") }
    }

    fileprivate func append(_ entry: Entry) {
        captured.withLock { $0.append(entry) }
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata.mapValues { "\($0)" }
            for (key, value) in event.metadata ?? [:] { all[key] = "\(value)" }
            log.append(Entry(level: event.level, message: "\(event.message)", metadata: all))
        }
    }
}
