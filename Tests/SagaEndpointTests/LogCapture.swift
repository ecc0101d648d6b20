import BrokerTestSupport
import LogTestSupport
import Logging
import Testing

/// Keeps what an endpoint logs, so that a test that fails can show it (the harness's endpoints log
/// errors only, which hid why a rare failure happened). The shared `CapturedLog`, with a wait that shows
/// the log when it times out.
final class LogCapture: Sendable {
    let log = CapturedLog()

    func logger(label: String, level: Logger.Level = .info) -> Logger {
        log.logger(label: label, level: level)
    }

    /// The last `count` lines.
    func tail(_ count: Int = 150) -> String { log.tail(count) }

    /// `waitUntil`, recording the log's tail with the issue when it times out.
    func waitUntil(timeout: Duration, message: String, _ condition: () async throws -> Bool) async throws {
        do {
            try await BrokerTestSupport.waitUntil(timeout: timeout, message: message, condition)
        } catch {
            Issue.record("\(message): the endpoint's log:\n\(tail())")
            throw error
        }
    }
}
