/// Outbox rows the broker returned (no queue of that name) as housekeeping re-sends them: since when this
/// process has seen them returned, and when it last sent them. Kept by the housekeeping loop, in memory: a
/// restarted endpoint starts their clocks again, so a row is moved to the error queue only after it was
/// returned for `unroutableTimeout` (by its age alone, a row written before a long downtime was moved at
/// its first return, while its queue was perhaps still being declared again), and re-sent every
/// `outboxRedispatchDelay` rather than at every pass (every 2 s).
///
/// Measured on the monotonic clock: these are durations within one process, and on the wall clock an NTP
/// step changed them. Stepped forward, a reply returned a moment ago counted as returned for the step's
/// length and went to the error queue at once; stepped back, it was not sent again until the clock caught up.
struct ReturnedRows {
    private var rows: [Int64: (since: ContinuousClock.Instant, lastSent: ContinuousClock.Instant)] = [:]

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

    /// Rows that were confirmed, moved, or failed otherwise (their clock starts again at their next return).
    mutating func forget(_ seqs: some Sequence<Int64>) {
        for seq in seqs { rows.removeValue(forKey: seq) }
    }

    /// Forgets rows not sent for `age` (dispatched meanwhile by a duplicate, or by another process).
    mutating func prune(notSentFor age: Duration, now: ContinuousClock.Instant) {
        rows = rows.filter { now - $0.value.lastSent < age }
    }
}
