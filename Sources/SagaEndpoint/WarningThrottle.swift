import Synchronization

/// At most one warning per interval for each key (an unconfirmed publish's destination and outcome),
/// saying how many messages the skipped ones were about. One warning per batch still made 1,391 lines in
/// 25 s while a queue's length limit nacked every publish (an operator's review).
final class WarningThrottle: Sendable {
    private struct Entry {
        var lastLogged: ContinuousClock.Instant
        var skippedMessages: Int
    }

    private let interval: Duration
    private let entries = Mutex<[String: Entry]>([:])

    init(interval: Duration = .seconds(1)) {
        self.interval = interval
    }

    /// Whether to log now a warning about `messages` messages under `key`: nil to stay quiet (they are
    /// added to the next warning's count); otherwise the messages to report, the skipped ones included.
    func admit(_ key: String, messages: Int, now: ContinuousClock.Instant = .now) -> Int? {
        entries.withLock { entries in
            if var entry = entries[key], now - entry.lastLogged < interval {
                entry.skippedMessages += messages
                entries[key] = entry
                return nil
            }
            let skipped = entries[key]?.skippedMessages ?? 0
            if entries.count >= 1000 {
                // Destinations come and go; forget those quiet for a while.
                entries = entries.filter { now - $0.value.lastLogged < interval * 60 }
            }
            entries[key] = Entry(lastLogged: now, skippedMessages: 0)
            return messages + skipped
        }
    }
}
