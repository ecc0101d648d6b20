import CSQLite

extension SQLiteConnection {
    /// Checkpoints the WAL on `checkpointer`'s thread instead of in the writer's commits: after every
    /// commit that leaves `pages` or more frames in the WAL, the commit only wakes the checkpointer. One
    /// that leaves `backstop` or more checkpoints itself, as SQLite's automatic checkpoint does (PASSIVE),
    /// so the WAL stays bounded if the checkpointer falls behind. Replaces `walAutocheckpointPages` (SQLite
    /// has one hook per connection); `close()` removes it.
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
final class WALHook {
    let trigger: WALCheckpointer.Trigger
    let pages: Int
    let backstop: Int

    init(trigger: WALCheckpointer.Trigger, pages: Int, backstop: Int) {
        (self.trigger, self.pages, self.backstop) = (trigger, pages, backstop)
    }

    func committed(_ db: OpaquePointer?, _ name: UnsafePointer<CChar>?, frames: Int) {
        if frames >= backstop {
            _ = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            trigger.backstops.add(1, ordering: .relaxed)
        } else if frames >= pages {
            trigger.request()
        }
    }
}
