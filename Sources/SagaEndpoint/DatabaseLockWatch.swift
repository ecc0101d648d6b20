import Synchronization

/// How long batches have been failing only because another connection holds the database's write lock
/// (SQLite's busy or locked, after the busy timeout). A moment of it is normal with two processes on one
/// file; minutes of it are not (a forgotten `sqlite3` session in a transaction, a `VACUUM` against a live
/// endpoint), and before, readiness and `saga_database_unavailable` stayed green all along while nothing
/// moved. Past a limit the pipeline reports the database as not writable.
final class DatabaseLockWatch: Sendable {
    private struct Failures {
        var since: ContinuousClock.Instant
        var last: ContinuousClock.Instant
    }

    private let failures = Mutex<Failures?>(nil)

    /// A batch failed on the lock and got nothing done: how long that has lasted, once it is `limit` or
    /// more. Failures further apart than `gap` are not one lock held (a lock held for good makes the next
    /// batch fail a busy timeout plus the requeue pause later): a short lock long after another one was
    /// taken for a lock held all the time between. `waited` is how long a failing batch waited for the lock
    /// (the busy timeout), so the lock was held at least that long when its first failure is seen.
    func locked(limit: Duration, gap: Duration, waited: Duration = .zero, now: ContinuousClock.Instant = .now) -> Duration? {
        let lasted = failures.withLock { failures -> Duration in
            if let current = failures, now - current.last <= gap {
                failures?.last = now
            } else {
                failures = Failures(since: now - waited, last: now)
            }
            return now - (failures?.since ?? now)
        }
        return lasted >= limit ? lasted : nil
    }

    /// A batch's transaction got through (it wrote, or found a duplicate, or had nothing to do): the lock
    /// is not held for good.
    func available() { failures.withLock { $0 = nil } }
}
