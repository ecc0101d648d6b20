import Synchronization

/// Exponential backoff (50 ms doubling to 5 s) for batches that fail for transient reasons.
final class TransientBackoff: Sendable {
    private let attempts = Mutex(0)

    func next() -> Duration {
        let attempt = attempts.withLock { value -> Int in
            defer { value += 1 }
            return value
        }
        return .milliseconds(min(5000, 50 << min(attempt, 10)))
    }

    func reset() { attempts.withLock { $0 = 0 } }
}
