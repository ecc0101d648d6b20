import CSQLite

extension SQLiteConnection {
    /// Checkpoints the WAL on `checkpointer`'s thread instead of in the writer's commits. A commit only
    /// wakes the checkpointer, once a tenth of `pages` frames are not in the database file yet and it is
    /// not already at work, so each checkpoint copies and syncs a few MiB. Once the WAL holds `pages`
    /// frames and the checkpointer has left only a few behind, the next commit copies those itself
    /// (`WALHook`), so that the WAL starts over. One that leaves `backstop` or more checkpoints itself, as
    /// SQLite's automatic checkpoint does (PASSIVE), so the WAL stays bounded if the checkpointer falls
    /// behind. Replaces `walAutocheckpointPages` (SQLite has one hook per connection); `close()` removes it.
    public func checkpointInBackground(_ checkpointer: WALCheckpointer, after pages: Int, backstop: Int) {
        guard let db else { return }
        let hook = WALHook(trigger: checkpointer.trigger, pages: pages, backstop: max(pages, backstop))
        walHook = hook
        sqlite3_wal_hook(db, { context, db, name, frames in
            guard let context else { return SQLITE_OK }
            Unmanaged<WALHook>.fromOpaque(context).takeUnretainedValue().committed(db, name, frames: Int(frames))
            // An error here would fail the COMMIT that is already durable; SQLite's own hook ignores the
            // checkpoint's result too.
            return SQLITE_OK
        }, Unmanaged.passUnretained(hook).toOpaque())
    }

    /// One PASSIVE checkpoint on this connection: copies what is committed in the WAL into the database
    /// file (and syncs it, unless `synchronous` is off) without waiting for the writer or readers.
    /// Returns the WAL's size in frames and how many of them are now in the database file.
    public func checkpointPassive() throws(SQLiteError) -> (walFrames: Int, checkpointed: Int) {
        let db = try requireOpen(sql: "PRAGMA wal_checkpoint(PASSIVE)")
        var log: Int32 = 0
        var copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        guard rc == SQLITE_OK else { throw SQLiteError(resultCode: rc, db: db, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
        return (Int(log), Int(copied))
    }
}

/// The WAL hook's state (`checkpointInBackground`): called on the writer's thread inside each COMMIT.
///
/// SQLite starts the WAL over only when a write transaction begins while every frame is in the database
/// file. Under steady load that never happens by itself: the writer commits again while the checkpointer
/// copies, so a few frames are always left. The hook used to wake the checkpointer at every commit past
/// one threshold: once past it the WAL never started over (until the backstop), and the checkpointer ran
/// back to back, copying one commit's frames and syncing the database file each time (about 80
/// checkpoints a second at 4,300 messages a second). Waking it once per threshold instead, and letting a
/// commit copy what is left so that the WAL starts over, made each checkpoint copy 40 MiB and sync it at
/// once, and a commit's own sync waited behind that (the p99 latency at half load rose in 4 of 4
/// alternating runs). So the checkpointer copies a tenth of the threshold at a time (`step`), and the
/// commit that finds the WAL at the threshold with little left besides its own frames (at most `closing`,
/// or one more commit of its size) copies that (a small copy and one sync), so that the next transaction
/// starts the WAL over.
final class WALHook {
    let trigger: WALCheckpointer.Trigger
    let pages: Int
    let backstop: Int
    /// At most this many frames left behind by the checkpointer's last run (besides the commit's own, and
    /// at least one more commit of that size) are copied by a commit.
    let closing: Int
    /// The checkpointer is woken once this many frames are not in the database file yet.
    let step: Int
    /// How many times the WAL started over (a commit that left fewer frames than the one before).
    private var cycle = 0
    private var lastFrames = 0

    init(trigger: WALCheckpointer.Trigger, pages: Int, backstop: Int) {
        (self.trigger, self.pages, self.backstop) = (trigger, pages, backstop)
        closing = max(16, pages / 16)
        step = max(1, pages / 10)
    }

    func committed(_ db: OpaquePointer?, _ name: UnsafePointer<CChar>?, frames: Int) {
        let restarted = frames < lastFrames
        if restarted { cycle += 1 }
        // This commit's own frames. What the checkpointer's last run left always includes them (the run
        // ended before this commit's hook), and usually a commit that landed while it ran: a bound of
        // `closing` alone was never met by commits larger than it, and the WAL then only started over at
        // the backstop.
        let own = restarted ? frames : frames - lastFrames
        lastFrames = frames
        if frames >= backstop {
            _ = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            trigger.backstops.add(1, ordering: .relaxed)
            return
        }
        guard frames >= step, !trigger.isBusy else { return }
        let last = trigger.lastRun.withLock { $0 }
        let behind = frames - (last.map { $0.cycle == cycle ? $0.backfilled : 0 } ?? 0)
        if frames >= pages, let last, last.cycle == cycle, behind - own <= max(closing, own) {
            _ = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            trigger.closings.add(1, ordering: .relaxed)
            // Should a reader keep the WAL from starting over, the next commit asks the checkpointer again
            // rather than copying here at every commit.
            trigger.lastRun.withLock { $0 = nil }
        } else if behind >= step {
            trigger.request(cycle: cycle)
        }
    }
}
