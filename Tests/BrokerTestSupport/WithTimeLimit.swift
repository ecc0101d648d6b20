// A deadline for one awaited call, so a test of "this returns" fails with a message instead of hanging
// until the suite's time limit.

/// Thrown by `withTimeLimit` when the operation had not returned at the deadline.
public struct TimeLimitExceeded: Error, CustomStringConvertible, Sendable {
    public let limit: Duration
    public let what: String

    public var description: String { "\(what) had not returned after \(limit)" }
}

/// Runs `operation`; if it has not returned after `limit`, cancels it and throws `TimeLimitExceeded`.
/// The operation must stop when cancelled, or this waits for it.
public func withTimeLimit<T: Sendable>(_ limit: Duration, _ what: String,
                                       _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TimeLimitExceeded(limit: limit, what: what)
        }
        return value
    }
}
