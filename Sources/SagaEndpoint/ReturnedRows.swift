/// Outbox rows the broker returned (no queue of that name) or refused (basic.nack: a queue full under
/// `reject-publish`) as housekeeping re-sends them: since when this process has seen them returned, or
/// refused, and when it last sent them. Kept by the housekeeping loop, in memory: a restarted endpoint starts
/// their clocks again, so a row is moved to the error queue only after it was returned for
/// `unroutableTimeout`, or refused for `refusedTimeout` (by its age alone, a row written before a long
/// downtime was moved at its first return, while its queue was perhaps still being declared again), and
/// re-sent every `outboxRedispatchDelay` rather than at every pass (every 2 s). Re-sent at every pass, an
/// event refused by one full queue of its exchange put a copy into each other bound queue every 2 s, not
/// every `outboxRedispatchDelay` as the README says.
///
/// A row's clock starts again when the broker's answer changes: a queue that refuses a message exists (its
/// return clock starts over), and a queue that is gone is no longer full (its refusal clock starts over).
///
/// Kept by outbox seq, and checked against the row's message id: the outbox's seq is a plain INTEGER PRIMARY
/// KEY, which SQLite gives again once the highest rows are purged, so a row dispatched elsewhere (and not
/// forgotten here until the prune, hours later) could hand its clock to a new row under its number, which
/// then went to the error queue at its first refusal.
///
/// Measured on the monotonic clock: these are durations within one process, and on the wall clock an NTP
/// step changed them. Stepped forward, a reply returned a moment ago counted as returned for the step's
/// length and went to the error queue at once; stepped back, it was not sent again until the clock caught up.
struct ReturnedRows {
    /// What the broker last answered to a row's send.
    enum Answer: Equatable {
        case returned, refused
    }

    private struct Entry {
        var messageId: String
        var answer: Answer
        var since: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
    }

    private var rows: [Int64: Entry] = [:]

    var count: Int { rows.count }

    /// Whether row `seq` (message `messageId`) may be sent now: not returned yet, or last sent at least
    /// `interval` ago.
    func mayResend(_ seq: Int64, messageId: String, now: ContinuousClock.Instant, every interval: Duration) -> Bool {
        guard let row = rows[seq], row.messageId == messageId else { return true }
        return now - row.lastSent >= interval
    }

    /// Records a return of row `seq` (message `messageId`) now; returns since when it has been returned.
    mutating func returned(_ seq: Int64, messageId: String, now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        record(.returned, seq, messageId: messageId, now: now)
    }

    /// Records a refusal of row `seq` (message `messageId`) now: it waits like a returned row before its next
    /// send. Returns since when it has been refused.
    mutating func refused(_ seq: Int64, messageId: String, now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        record(.refused, seq, messageId: messageId, now: now)
    }

    private mutating func record(_ answer: Answer, _ seq: Int64, messageId: String,
                                 now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let since = rows[seq].flatMap { $0.answer == answer && $0.messageId == messageId ? $0.since : nil } ?? now
        rows[seq] = Entry(messageId: messageId, answer: answer, since: since, lastSent: now)
        return since
    }

    /// Rows that were confirmed, moved, or failed otherwise (their clock starts again at their next return).
    mutating func forget(_ seqs: some Sequence<Int64>) {
        for seq in seqs { rows.removeValue(forKey: seq) }
    }

    /// Forgets rows not sent for `age` (dispatched meanwhile by a duplicate, or by another process).
    mutating func prune(notSentFor age: Duration, now: ContinuousClock.Instant) {
        rows = rows.filter { now - $0.value.lastSent < age }
    }
}
