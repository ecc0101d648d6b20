import BrokerTestSupport
import Logging
import Synchronization
import Testing

/// Keeps what an endpoint logs, so that a test that fails can show it (the harness's endpoints log
/// errors only, which hid why a rare failure happened).
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    func logger(label: String, level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    /// The last `count` lines.
    func tail(_ count: Int = 150) -> String {
        lines.withLock { $0.suffix(count).joined(separator: "\n") }
    }

    /// `waitUntil`, recording the log's tail with the issue when it times out.
    func waitUntil(timeout: Duration, message: String, _ condition: () async throws -> Bool) async throws {
        do {
            try await BrokerTestSupport.waitUntil(timeout: timeout, message: message, condition)
        } catch {
            Issue.record("\(message): the endpoint's log:\n\(tail())")
            throw error
        }
    }

    fileprivate func append(_ line: String) {
        lines.withLock { $0.append(line) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all = metadata
            for (key, value) in event.metadata ?? [:] { all[key] = value }
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(fields)")
        }
    }
}
