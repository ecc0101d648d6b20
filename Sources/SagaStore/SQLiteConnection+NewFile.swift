import Foundation
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
    /// made it group-readable for a backup user), and its companions follow it. A symbolic link is followed
    /// to the file SQLite opens (`O_EXCL` alone does not follow it, and SQLite then created the file it
    /// points to with 0644). A failure here (a missing folder) is left to SQLite, which reports it.
    static func createPrivateFileIfMissing(_ path: String) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let file = resolvingLinks(path)
        #if canImport(Glibc)
        let descriptor = Glibc.open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor >= 0 { Glibc.close(descriptor) }
        #endif
    }

    /// The file `path` names once its symbolic links are followed (a relative target is read from the
    /// link's folder), whether it exists or not; `path` itself when it is no link. After 40 links (a loop)
    /// it gives up, as the kernel does, and leaves that path to SQLite. The CLI's preflight checks the same
    /// file.
    public static func resolvingLinks(_ path: String) -> String {
        var current = path
        for _ in 0..<40 {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: current) else { return current }
            current = target.hasPrefix("/") ? target
                : ((current as NSString).deletingLastPathComponent as NSString).appendingPathComponent(target)
        }
        return current
    }
}
