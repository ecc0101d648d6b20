/// Outbox rows the broker returned (no queue of that name) or refused (basic.nack: a queue full under
/// `reject-publish`) as housekeeping re-sends them: since when this process has seen them returned, and
/// when it last sent them. Kept by the housekeeping loop, in memory: a restarted endpoint starts their
/// clocks again, so a row is moved to the error queue only after it was returned for `unroutableTimeout`
/// (by its age alone, a row written before a long downtime was moved at its first return, while its queue
/// was perhaps still being declared again), and re-sent every `outboxRedispatchDelay` rather than at every
/// pass (every 2 s). A refused row has no return clock (a full queue exists; it is never moved), but is
/// spaced out the same way: re-sent at every pass, an event refused by one full queue of its exchange put
/// a copy into each other bound queue every 2 s, not every `outboxRedispatchDelay` as the README says.
///
/// Measured on the monotonic clock: these are durations within one process, and on the wall clock an NTP
/// step changed them. Stepped forward, a reply returned a moment ago counted as returned for the step's
/// length and went to the error queue at once; stepped back, it was not sent again until the clock caught up.
struct ReturnedRows {
    /// `since` is nil for a row refused since its last return: its return clock starts at its next return.
    private var rows: [Int64: (since: ContinuousClock.Instant?, lastSent: ContinuousClock.Instant)] = [:]

    var count: Int { rows.count }

    /// Whether `seq` may be sent now: not returned yet, or last sent at least `interval` ago.
    func mayResend(_ seq: Int64, now: ContinuousClock.Instant, every interval: Duration) -> Bool {
        guard let row = rows[seq] else { return true }
        return now - row.lastSent >= interval
    }

    /// Records a return of `seq` now; returns since when it has been returned.
    mutating func returned(_ seq: Int64, now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let since = rows[seq]?.since ?? now
        rows[seq] = (since, now)
        return since
    }

    /// Records a refusal of `seq` now: it waits like a returned row before its next send. Its return clock
    /// starts again: a queue that refuses a message exists.
    mutating func refused(_ seq: Int64, now: ContinuousClock.Instant) {
        rows[seq] = (nil, now)
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
