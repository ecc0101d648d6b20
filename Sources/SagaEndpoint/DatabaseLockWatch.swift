import Synchronization

/// How long batches have been failing only because another connection holds the database's write lock
/// (SQLite's busy or locked, after the busy timeout). A moment of it is normal with two processes on one
/// file; minutes of it are not (a forgotten `sqlite3` session in a transaction, a `VACUUM` against a live
/// endpoint), and before, readiness and `saga_database_unavailable` stayed green all along while nothing
/// moved. Past a limit the pipeline reports the database as not writable.
final class DatabaseLockWatch: Sendable {
    private let since = Mutex<ContinuousClock.Instant?>(nil)

    /// A batch failed on the lock and wrote nothing: how long that has lasted, once it is `limit` or more.
    func locked(limit: Duration, now: ContinuousClock.Instant = .now) -> Duration? {
        let lasted = since.withLock { since -> Duration in
            let start = since ?? now
            since = start
            return now - start
        }
        return lasted >= limit ? lasted : nil
    }

    /// A batch wrote the database: the lock is not held for good.
    func written() { since.withLock { $0 = nil } }
}
