import DedicatedThread
import Foundation
import Logging
import SagaStore

/// Reads the outbox and timeout backlogs for the gauges, on a connection and a thread of its own.
///
/// Why not on the store's connection: `COUNT(*)` reads a whole index, and with a million pending
/// timeouts that took 20–30 ms on the SQLite thread every refresh, holding up batches and pushing the
/// writer's hot index pages out of its cache. In WAL mode this reader neither blocks the writer nor
/// waits for it; its counts are those of the last commit.
actor BacklogReader {
    private let executor: DedicatedThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private let store: SagaStore

    /// Opens `path`, which the endpoint's StoreWorker has already created and migrated, on the reader's own
    /// thread; if that fails, the thread ends.
    static func open(path: String, busyTimeout: Duration, logger: Logger, threadName: String = "sqlite-backlog") async throws -> BacklogReader {
        try await DedicatedThreadExecutor.starting(name: threadName) { executor in
            try BacklogReader(executor: executor, path: path, busyTimeout: busyTimeout, logger: logger)
        }
    }

    private init(executor: DedicatedThreadExecutor, path: String, busyTimeout: Duration, logger: Logger) throws {
        self.executor = executor
        var options = SagaStore.Options()
        options.busyTimeout = busyTimeout
        // A count reads each page once; a page cache of its own would only add to the process's memory.
        options.cacheSizeKiB = 256
        store = try SagaStore(path: path, options: options, logger: logger)
    }

    deinit {
        // The store closes its SQLite handle when it is released, if `close()` has not.
        executor.shutdown()
    }

    /// Closes the SQLite connection on the reader's thread.
    func close() {
        store.close()
    }

    func backlog() throws -> (outbox: Int, timeouts: Int) {
        (try store.outboxBacklog(), try store.timeoutCount())
    }

    /// What the store holds to resume, read at start (`logStoredWork`), here for the same reason as the gauges.
    func storedWork(now: Date) throws -> StoredWork {
        try store.storedWork(now: now)
    }
}
