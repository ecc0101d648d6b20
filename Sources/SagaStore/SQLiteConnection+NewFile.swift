#if canImport(Glibc)
import Glibc
#endif

extension SQLiteConnection {
    /// Creates the database file at `path`, empty and readable and writable by its owner only, when there
    /// is none yet; does nothing to an existing file, whatever its mode.
    ///
    /// SQLite creates a new database with 0644 under the usual umask of 022, so any local user could read
    /// the sagas' state and the messages kept in the outbox and timeouts, and it gives the `-wal` and `-shm`
    /// files the database file's mode. An empty file is a valid empty database to SQLite, so creating it
    /// first is enough to make all three private. An existing file keeps its mode (an operator may have
    /// made it group-readable for a backup user), and its companions follow it. `O_EXCL` does not follow a
    /// symbolic link: one at `path` is left to SQLite, which opens (or creates) what it points to. A
    /// failure here (a missing folder) is left to SQLite too, which reports it with its own message.
    static func createPrivateFileIfMissing(_ path: String) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        #if canImport(Glibc)
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor >= 0 { Glibc.close(descriptor) }
        #endif
    }
}
