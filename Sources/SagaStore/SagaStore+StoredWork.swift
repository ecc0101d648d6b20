public import Foundation

/// What the store holds that an endpoint resumes when it starts, for the one record it logs then: after a
/// `kill -9`, the operator's only view of what the crash left (unconfirmed outbox rows sent again, timeouts
/// that fell due meanwhile fired late, parked retries, live sagas).
public struct StoredWork: Sendable, Equatable {
    /// Counts stop here: a count of rows in a range reads each of them, and a backlog of millions must not
    /// hold up the start (the exact figure is of no use to an operator beyond "very many").
    public static let countLimit = 100_000

    /// Live saga instances (all types).
    public var liveSagas: Int
    /// Outbox rows written and never confirmed by the broker, up to `countLimit`.
    public var unconfirmedOutbox: Int
    /// When the first of them (by row number) was written or last sent again; nil when there is none.
    public var oldestUnconfirmedOutboxAt: Date?
    /// Rows of the timeouts table (saga timeouts and parked messages), due or not.
    public var pendingTimeouts: Int
    /// Those of them due by `now`, up to `countLimit`: they fire at once, late.
    public var overdueTimeouts: Int
    /// When the earliest of them fell due; nil when none is due.
    public var earliestOverdueAt: Date?
    /// Those of them that are parked messages (delayed retries, messages early for their saga), up to
    /// `countLimit`.
    public var parkedMessages: Int
    /// Messages whose failed attempts are remembered (retried, or parked for a delayed retry), up to `countLimit`.
    public var failingMessages: Int
    /// Messages redelivered whose processing never ended (a crash while they were processed), up to `countLimit`.
    public var unfinishedRedeliveries: Int

    public init(liveSagas: Int = 0, unconfirmedOutbox: Int = 0, oldestUnconfirmedOutboxAt: Date? = nil,
                pendingTimeouts: Int = 0, overdueTimeouts: Int = 0, earliestOverdueAt: Date? = nil,
                parkedMessages: Int = 0, failingMessages: Int = 0, unfinishedRedeliveries: Int = 0) {
        self.liveSagas = liveSagas
        self.unconfirmedOutbox = unconfirmedOutbox
        self.oldestUnconfirmedOutboxAt = oldestUnconfirmedOutboxAt
        self.pendingTimeouts = pendingTimeouts
        self.overdueTimeouts = overdueTimeouts
        self.earliestOverdueAt = earliestOverdueAt
        self.parkedMessages = parkedMessages
        self.failingMessages = failingMessages
        self.unfinishedRedeliveries = unfinishedRedeliveries
    }
}

extension SagaStore {
    /// Reads `StoredWork` in one read transaction (its counts are of one commit).
    ///
    /// Cost, measured on a 700 MB file with a million live sagas and a million timeouts (half of them due),
    /// page cache of 256 KiB: 50 ms in all with the file in the OS's cache, about 1 s from a cold disk. The
    /// whole-table counts take SQLite's b-tree count of the smallest index (about 20 MB each: 15–40 ms warm,
    /// 0.4–0.6 s cold); the capped range counts up to 20 ms each; the rest are index probes. Live sagas per type
    /// are left out: `GROUP BY saga_type` steps through every entry of the (type, id) index, 330 ms, and
    /// `saga-endpoint sagas` lists them.
    public func storedWork(now: Date) throws -> StoredWork {
        try connection.transaction(immediate: false) {
            func capped(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> Int {
                try count("SELECT COUNT(*) FROM (\(sql) LIMIT \(StoredWork.countLimit))", bindings)
            }
            func date(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> Date? {
                try connection.query(sql, bindings).first?[0].realValue.map { Date(timeIntervalSince1970: $0) }
            }
            let due = SQLiteValue(now)
            return StoredWork(
                liveSagas: try count("SELECT COUNT(*) FROM sagas"),
                unconfirmedOutbox: try capped("SELECT 1 FROM outbox WHERE dispatched_at IS NULL"),
                // The first row by number: the index on dispatched_at lists the unconfirmed rows by it, one probe.
                oldestUnconfirmedOutboxAt: try date(
                    "SELECT created_at FROM outbox WHERE dispatched_at IS NULL ORDER BY seq LIMIT 1"),
                pendingTimeouts: try count("SELECT COUNT(*) FROM timeouts"),
                overdueTimeouts: try capped("SELECT 1 FROM timeouts WHERE due_at <= ?", [due]),
                earliestOverdueAt: try date("SELECT MIN(due_at) FROM timeouts WHERE due_at <= ?", [due]),
                // The partial index on rows without a saga; a parked message's row names no saga type.
                parkedMessages: try capped("SELECT 1 FROM timeouts WHERE saga_seq IS NULL AND saga_type = ''"),
                failingMessages: try capped("SELECT 1 FROM failures"),
                unfinishedRedeliveries: try capped("SELECT 1 FROM deliveries"))
        }
    }
}
