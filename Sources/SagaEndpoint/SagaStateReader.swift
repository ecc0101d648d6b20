import DedicatedThread
import Foundation
import Logging
import SagaStore
import Sagas

/// Reads saga states for the handlers that run before a batch's transaction, on a second SQLite
/// connection with a thread of its own. In WAL mode a reader never waits for the writer, so the next
/// batch's states are read while the previous batch commits; the transaction then checks that what was
/// read is still current (`SagaSpeculation`).
actor SagaStateReader {
    private let executor: DedicatedThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let store: SagaStore
    private let logger: Logger

    /// Opens the store the `StoreWorker` created (and migrated) at `path`, on the reader's own thread; if
    /// that fails, the thread ends.
    static func open(path: String, busyTimeout: Duration = .seconds(5), logger: Logger, threadName: String = "sqlite-read") async throws -> SagaStateReader {
        try await DedicatedThreadExecutor.starting(name: threadName) { executor in
            try SagaStateReader(executor: executor, path: path, busyTimeout: busyTimeout, logger: logger)
        }
    }

    private init(executor: DedicatedThreadExecutor, path: String, busyTimeout: Duration, logger: Logger) throws {
        self.executor = executor
        var options = SagaStore.Options()
        options.busyTimeout = busyTimeout
        // Small: in WAL mode a connection drops its whole page cache when it starts reading after another
        // connection committed, which the writer does between two loads, so the cache only serves one
        // load (a batch's keys: the index's upper pages and up to a leaf per key, well under 4 MiB).
        options.cacheSizeKiB = 4 * 1024
        self.store = try SagaStore(path: path, options: options, logger: logger)
        self.logger = logger
    }

    deinit {
        executor.shutdown()
    }

    /// Closes the SQLite connection on the reader's thread.
    func close() {
        store.close()
    }

    /// The stored instances among `keys`, read in one snapshot; a key without an entry has none. Nil when
    /// the read failed: the transaction then runs the handlers itself.
    func load(_ keys: Set<SagaInstanceKey>) -> [SagaInstanceKey: StoredSaga]? {
        do {
            return try store.transaction(immediate: false) { store in
                let persistence = SQLitePersistence(store: store)
                var found: [SagaInstanceKey: StoredSaga] = [:]
                for key in keys {
                    if let saga = try persistence.loadSaga(key) { found[key] = saga }
                }
                return found
            }
        } catch {
            logger.warning("could not read saga states ahead of the transaction", metadata: ["error": "\(error)"])
            return nil
        }
    }
}
