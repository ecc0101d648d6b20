// Polling with a deadline, for conditions that become true eventually (a message arrived, a connection
// recovered, a child process printed a line).

/// Thrown by `waitUntil` when the condition is still false at the deadline.
public struct WaitUntilTimeout: Error, CustomStringConvertible, Sendable {
    public let timeout: Duration
    public let message: String?
    public let fileID: String
    public let line: Int

    public var description: String {
        let what = message.map { " (\($0))" } ?? ""
        return "waitUntil at \(fileID):\(line) timed out after \(timeout): condition still false\(what)"
    }
}

/// Calls `condition` every `poll` until it returns true; throws `WaitUntilTimeout` if it is still false
/// after `timeout`. Errors thrown by `condition` end the wait and propagate. Runs `condition` on the
/// caller's actor.
///
///     try await waitUntil(timeout: .seconds(10)) { try await consumer.receivedCount() == 3 }
public func waitUntil(
    timeout: Duration,
    poll: Duration = .milliseconds(50),
    message: String? = nil,
    isolation: isolated (any Actor)? = #isolation,
    fileID: String = #fileID,
    line: Int = #line,
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try await condition() { return }
        let now = clock.now
        guard now < deadline else {
            throw WaitUntilTimeout(timeout: timeout, message: message, fileID: fileID, line: line)
        }
        try await Task.sleep(for: min(poll, now.duration(to: deadline)))
    }
}
