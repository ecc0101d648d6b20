public import Foundation
public import Sagas

/// An in-memory `SagaPersistence` plus the other tables the endpoint keeps in the same transaction:
/// pending timeouts and the inbox of processed message ids. `SagaTestHost` owns one; it is public so
/// other tests can drive a `MessageDispatcher` against it directly.
///
/// It follows the store's contract: inserting an existing instance or updating/deleting with a stale
/// version throws `InMemoryPersistenceError.conflict`, and deleting an instance cancels its timeouts.
/// Not thread-safe: use it from one task.
public final class InMemorySagaPersistence: SagaPersistence {
    /// Everything stored; a value, so a copy is a snapshot (the host rolls a failed delivery back to one).
    public struct Contents: Sendable, Equatable {
        public var sagas: [SagaInstanceKey: StoredSaga] = [:]
        /// Pending timeouts in the order they were requested.
        public var timeouts: [TimeoutRequest] = []
        /// The inbox: ids of the messages whose processing committed.
        public var processedMessageIds: Set<String> = []

        public init() {}
    }

    public internal(set) var contents = Contents()

    public init() {}

    // MARK: SagaPersistence

    public func loadSaga(_ key: SagaInstanceKey) throws -> StoredSaga? {
        contents.sagas[key]
    }

    public func insertSaga(_ saga: StoredSaga) throws {
        guard contents.sagas[saga.key] == nil else {
            throw InMemoryPersistenceError.conflict(saga: saga.key, reason: "the instance exists already")
        }
        contents.sagas[saga.key] = saga
    }

    public func updateSaga(_ saga: StoredSaga, expectedVersion: Int) throws {
        try checkVersion(saga.key, expectedVersion)
        contents.sagas[saga.key] = saga
    }

    public func deleteSaga(_ key: SagaInstanceKey, expectedVersion: Int) throws {
        try checkVersion(key, expectedVersion)
        contents.sagas[key] = nil
        contents.timeouts.removeAll { $0.saga == key }
    }

    // MARK: The other tables

    public func scheduleTimeouts(_ timeouts: [TimeoutRequest]) {
        contents.timeouts += timeouts
    }

    /// Removes a timeout (it fired). Returns whether it was pending.
    @discardableResult
    public func removeTimeout(id: String) -> Bool {
        guard let index = contents.timeouts.firstIndex(where: { $0.timeoutId == id }) else { return false }
        contents.timeouts.remove(at: index)
        return true
    }

    public func hasProcessed(messageId: String) -> Bool {
        contents.processedMessageIds.contains(messageId)
    }

    public func markProcessed(messageId: String) {
        contents.processedMessageIds.insert(messageId)
    }

    /// The earliest pending timeout due at or before `date`; among equal due times, the one requested first.
    public func nextDueTimeout(notAfter date: Date) -> TimeoutRequest? {
        var next: TimeoutRequest?
        for timeout in contents.timeouts where timeout.dueAt <= date {
            if next == nil || timeout.dueAt < next!.dueAt { next = timeout }
        }
        return next
    }

    private func checkVersion(_ key: SagaInstanceKey, _ expectedVersion: Int) throws {
        guard let stored = contents.sagas[key] else {
            throw InMemoryPersistenceError.conflict(saga: key, reason: "the instance does not exist")
        }
        guard stored.version == expectedVersion else {
            throw InMemoryPersistenceError.conflict(
                saga: key, reason: "stored version \(stored.version), expected \(expectedVersion)")
        }
    }
}

/// The optimistic-concurrency conflict of `InMemorySagaPersistence` (retryable in the real store).
public enum InMemoryPersistenceError: Error, Sendable, Equatable, CustomStringConvertible {
    case conflict(saga: SagaInstanceKey, reason: String)

    public var description: String {
        switch self {
        case .conflict(let saga, let reason): "conflict on saga \(saga): \(reason)"
        }
    }
}
