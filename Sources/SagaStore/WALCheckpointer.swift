import DedicatedThread
import Dispatch
import Foundation
public import Logging
import Synchronization

/// Copies the WAL into the database file on a thread and a connection of its own, so that commits do not
/// stop for it (`SQLiteConnection.checkpointInBackground`).
///
/// SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on the writer's
/// connection. With the endpoint's 10,000-page threshold that commit took 20–35 ms instead of about 3,
/// about every half second at 4,000 msg/s, and every message behind it waited (the bench's latency run
/// counts such commits). Here the commit only wakes this thread, which runs a PASSIVE checkpoint: it
/// copies what is committed without the write lock, so the writer goes on meanwhile, a few MiB at a time;
/// a commit copies the last few frames itself, so that the next transaction starts the WAL over (see
/// `WALHook` for why both). Durability does not change: a commit is
/// durable in the WAL before it returns, and a checkpoint syncs the database file before the WAL is
/// reused (with this connection's `synchronous`, which must be the writer's).
///
/// `Sendable`: the thread's connection never leaves the thread (`run`); what is shared is `Trigger`
/// (atomics and a semaphore) and the semaphores that start and stop the thread.
public final class WALCheckpointer: Sendable {
    /// Shared with the writer's WAL hook, which runs inside its commits.
    final class Trigger: Sendable {
        let wake = DispatchSemaphore(value: 0)
        /// Set by the hook, cleared when the thread starts a checkpoint: one wake-up per checkpoint.
        let requested = Atomic<Bool>(false)
        /// Set while the thread runs a checkpoint (before `requested` is cleared, so the hook never sees
        /// neither while one starts).
        let running = Atomic<Bool>(false)
        let stopped = Atomic<Bool>(false)
        let completed = Atomic<Int>(0)
        let backstops = Atomic<Int>(0)
        /// Checkpoints the writer's commits ran to end a cycle (`WALHook`).
        let closings = Atomic<Int>(0)
        /// The WAL cycle (the hook's count of the WAL starting over) the latest request was made in.
        let requestCycle = Atomic<Int>(0)
        /// The latest checkpoint that worked: the cycle it was asked for in, how many of the WAL's frames
        /// were in the database file after it, and how many the WAL held then (tests: all copied).
        let lastRun = Mutex<(cycle: Int, backfilled: Int, walFrames: Int)?>(nil)

        func request(cycle: Int = 0) {
            requestCycle.store(cycle, ordering: .relaxed)
            guard !requested.exchange(true, ordering: .acquiringAndReleasing) else { return }
            wake.signal()
        }

        var isBusy: Bool {
            requested.load(ordering: .acquiring) || running.load(ordering: .acquiring)
        }
    }

    let trigger = Trigger()
    private let finished = DispatchSemaphore(value: 0)
    private let joined = Atomic<Bool>(false)

    /// Opens the checkpointer's connection to the database at `path` on a thread of its own (named
    /// `threadName`), with the writer's `synchronous`; throws if it cannot be opened.
    public init(path: String, synchronous: SQLiteConnection.Options.Synchronous, logger: Logger,
                threadName: String = "sqlite-ckpt") throws(SQLiteError) {
        let opened = DispatchSemaphore(value: 0)
        let openError = Mutex<SQLiteError?>(nil)
        let (trigger, finished) = (self.trigger, self.finished)
        let thread = Thread {
            defer { finished.signal() }
            // Foundation's `Thread.name` does not reach the OS here; `top -H` and `perf` show this one.
            DedicatedThreadExecutor.nameCurrentThread(threadName)
            let connection: SQLiteConnection
            do throws(SQLiteError) {
                connection = try SQLiteConnection(
                    path: path, options: .init(synchronous: synchronous, statementCacheCapacity: 0), logger: logger)
            } catch {
                openError.withLock { $0 = error }
                opened.signal()
                return
            }
            opened.signal()
            Self.run(connection, trigger: trigger, logger: logger)
            connection.close()
        }
        thread.start()
        opened.wait()
        if let error = openError.withLock({ $0 }) {
            finished.wait()
            joined.store(true, ordering: .relaxed)
            throw error
        }
    }

    deinit { stop() }

    private static func run(_ connection: SQLiteConnection, trigger: Trigger, logger: Logger) {
        // Since the last checkpoint that worked, one failed for another reason than BUSY (a full disk, an
        // I/O error): the WAL is not copied and grows meanwhile. Logged once, not at every commit's wake-up.
        var failing = false
        while true {
            trigger.wake.wait()
            if trigger.stopped.load(ordering: .acquiring) { return }
            trigger.running.store(true, ordering: .releasing)
            defer { trigger.running.store(false, ordering: .releasing) }
            let cycle = trigger.requestCycle.load(ordering: .relaxed)
            trigger.requested.store(false, ordering: .releasing)
            do {
                let result = try connection.checkpointPassive()
                trigger.lastRun.withLock { $0 = (cycle, result.checkpointed, result.walFrames) }
                trigger.completed.add(1, ordering: .relaxed)
                if failing {
                    failing = false
                    logger.info("background WAL checkpoint works again", metadata: ["path": "\(connection.path)"])
                }
            } catch where error.code == .busy {
                // Another connection (a second process) is checkpointing; the next commit asks again.
                logger.debug("background WAL checkpoint failed", metadata: [
                    "path": "\(connection.path)", "error": "\(error)"])
            } catch {
                // The next commit past the threshold asks again; until one works the WAL keeps growing
                // (commits checkpoint themselves at the backstop, which fails the same way).
                logger.log(level: failing ? .debug : .warning,
                           "background WAL checkpoint failed; the WAL grows until a checkpoint works", metadata: [
                    "path": "\(connection.path)", "error": "\(error)"])
                failing = true
            }
        }
    }

    /// Ends the thread (after the checkpoint it may be running) and closes its connection. Idempotent.
    public func stop() {
        guard !joined.exchange(true, ordering: .acquiringAndReleasing) else { return }
        trigger.stopped.store(true, ordering: .releasing)
        trigger.wake.signal()
        finished.wait()
    }

    /// Checkpoints this thread ran, and those the writer's commits ran (or tried: another connection may
    /// have been checkpointing) themselves at the backstop.
    public var checkpointsRun: Int { trigger.completed.load(ordering: .relaxed) }
    public var backstopCheckpoints: Int { trigger.backstops.load(ordering: .relaxed) }
    /// Checkpoints the writer's commits ran to copy the little left after this thread's, so that the WAL
    /// can start over (`SQLiteConnection.checkpointInBackground`).
    public var closingCheckpoints: Int { trigger.closings.load(ordering: .relaxed) }
}
