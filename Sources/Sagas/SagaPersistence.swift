public import Foundation

/// A saga instance as stored: its state as JSON plus metadata.
public struct StoredSaga: Sendable, Equatable {
    public var key: SagaInstanceKey
    public var sagaId: String
    public var state: Data
    /// Incremented on every update; updates are conditional on it (optimistic concurrency).
    public var version: Int
    public var originator: Originator
    public var createdAt: Date
    public var updatedAt: Date

    public init(key: SagaInstanceKey, sagaId: String, state: Data, version: Int, originator: Originator,
                createdAt: Date, updatedAt: Date) {
        self.key = key
        self.sagaId = sagaId
        self.state = state
        self.version = version
        self.originator = originator
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// The storage the dispatcher needs, called inside the caller's transaction. The endpoint implements it
/// on SQLite; `SagaTesting` in memory.
public protocol SagaPersistence {
    func loadSaga(_ key: SagaInstanceKey) throws -> StoredSaga?
    /// Throws a retryable conflict error when the instance exists already.
    func insertSaga(_ saga: StoredSaga) throws
    /// Throws a retryable conflict error when the stored version is not `expectedVersion`.
    func updateSaga(_ saga: StoredSaga, expectedVersion: Int) throws
    /// Deletes the instance and cancels its pending timeouts.
    func deleteSaga(_ key: SagaInstanceKey, expectedVersion: Int) throws
}
