import Foundation
import Logging
import SagaStore

/// Checks that the database can be opened and written before anything else happens: a missing folder or
/// a read-only file used to surface as a bare "unable to open database file" after the topology had been
/// declared (and SQLite opens a read-only file without a word, failing only at the first write).
enum DatabasePreflight {
    static func check(_ path: String, endpoint: String, logger: Logger) throws {
        func fail(_ reason: String) -> CLIError {
            CLIError("cannot use the database \(path): \(reason) (check --database, the environment variable or "
                     + "the config file)")
        }
        // SQLite follows a symbolic link and keeps the -wal and -shm beside the file it points to: that file
        // and its folder are what must be usable (the link's folder was checked, and a link into a missing
        // folder ended in SQLite's bare "unable to open database file").
        let file = SQLiteConnection.resolvingLinks(path)
        let link = file == path ? "" : " (\(path) is a symbolic link to \(file))"
        let folder = (file as NSString).deletingLastPathComponent
        // The folder too: SQLite creates the -wal and -shm files beside the database.
        guard access(folder.isEmpty ? "." : folder, W_OK | X_OK) == 0 else {
            throw fail("its folder \(folder.isEmpty ? "." : folder) \(errno == ENOENT ? "does not exist" : "is not writable")\(link)")
        }
        // A missing file is created by the endpoint; an existing one must be a writable database, and not
        // another application's: the store would put its tables in it (a mistyped path).
        var info = stat()
        guard stat(file, &info) == 0 else { return try checkOwner(path, endpoint, logger, fail) }
        // A device or a FIFO reads as an empty database and failed later with a bare "disk I/O error".
        guard info.st_mode & S_IFMT == S_IFREG else { throw fail("it is not a regular file (a device, a FIFO or a socket)\(link)") }
        guard access(path, R_OK | W_OK) == 0 else { throw fail("the file is not writable") }
        let foreign: [String]
        do {
            foreign = try SagaStore.foreignTables(inFileAt: path, logger: logger)  // reads the header: a database?
        } catch {
            throw fail(error.message)
        }
        guard foreign.isEmpty else {
            throw fail("it holds tables of another application (\(foreign.joined(separator: ", "))) and no saga store")
        }
        try checkOwner(path, endpoint, logger, fail)
    }

    /// Refuses the store of another endpoint (`SagaStore.claim`): the bank started on the transfer endpoint's
    /// file took the transfer sagas' due timeouts and moved them to its own error queue. Best effort: a file
    /// the store cannot open or lock right now is left to the endpoint, which reports that as before (a
    /// corrupt file, a newer schema, a write lock held by another session).
    private static func checkOwner(_ path: String, _ endpoint: String, _ logger: Logger,
                                   _ fail: (String) -> CLIError) throws {
        let owner: String?
        do {
            let store = try SagaStore(path: path, options: .init(busyTimeout: .milliseconds(500)), logger: logger)
            defer { store.close() }
            owner = try store.claim(forEndpoint: endpoint)
        } catch {
            logger.debug("the database's endpoint was not checked", metadata: ["error": "\(error)"])
            return
        }
        if let owner {
            throw fail("it is the store of endpoint '\(owner)', and this is endpoint '\(endpoint)': two endpoints on "
                       + "one file take each other's timeouts (give each its own file; to hand this one over, "
                       + "delete its row in table store_owner with every endpoint on it stopped)")
        }
    }
}
