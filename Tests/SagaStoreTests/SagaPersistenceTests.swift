import Foundation
import Testing
@testable import SagaStore

@Suite struct SagaPersistenceTests {
    private func record(_ correlationId: String, type: String = "Transfer", at seconds: Double = 0) -> SagaRecord {
        SagaRecord(
            sagaType: type, correlationId: correlationId, sagaId: UUID().uuidString,
            state: Data(#"{"step":"started"}"#.utf8), version: 1, originatorReplyTo: "client-replies",
            originatorCorrelationId: "req-\(correlationId)", createdAt: date(seconds))
    }

    @Test func insertLoadRoundTrips() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        let saga = record("c1")
        try store.insertSaga(saga)
        #expect(try store.loadSaga(type: "Transfer", correlationId: "c1") == saga)
        #expect(try store.loadSaga(type: "Payout", correlationId: "c1") == nil)

        var bare = record("c2")
        bare.originatorReplyTo = nil
        bare.originatorCorrelationId = nil
        try store.insertSaga(bare)
        #expect(try store.loadSaga(type: "Transfer", correlationId: "c2") == bare)
    }

    @Test func insertClashIsAConflict() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        let saga = record("c1")
        try store.insertSaga(saga)

        let samePrimaryKey = #expect(throws: SagaStoreError.conflict(sagaType: "Transfer", correlationId: "c1")) {
            try store.insertSaga(record("c1"))
        }
        #expect(samePrimaryKey?.isRetryable == true)
        // The saga id is a random UUID the runtime draws, not a key: since schema 3 no index checks it
        // (one random-keyed index fewer per saga start).
    }

    @Test func updateUsesOptimisticVersions() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        try store.insertSaga(record("c1"))

        let newState = Data(#"{"step":"debited"}"#.utf8)
        #expect(try store.updateSaga(type: "Transfer", correlationId: "c1", state: newState, expectedVersion: 1, at: date(5)) == 2)
        let loaded = try #require(try store.loadSaga(type: "Transfer", correlationId: "c1"))
        #expect(loaded.version == 2)
        #expect(loaded.state == newState)
        #expect(loaded.updatedAt == date(5))
        #expect(loaded.createdAt == date(0))

        // A handler that loaded version 1 lost the race.
        #expect(throws: SagaStoreError.conflict(sagaType: "Transfer", correlationId: "c1")) {
            try store.updateSaga(type: "Transfer", correlationId: "c1", state: Data("{}".utf8), expectedVersion: 1, at: date(6))
        }
        #expect(try store.loadSaga(type: "Transfer", correlationId: "c1")?.state == newState)

        // Updating a saga that does not exist is a conflict too.
        #expect(throws: SagaStoreError.conflict(sagaType: "Transfer", correlationId: "nope")) {
            try store.updateSaga(type: "Transfer", correlationId: "nope", state: Data("{}".utf8), expectedVersion: 1, at: date(6))
        }

        #expect(throws: SagaStoreError.invalidText(table: "sagas", column: "state")) {
            try store.updateSaga(type: "Transfer", correlationId: "c1", state: Data([0xFF, 0xFE]), expectedVersion: 2, at: date(7))
        }
    }

    @Test func deleteChecksVersionAndRemovesTimeouts() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        try store.insertSaga(record("c1"))
        try store.insertSaga(record("c2"))
        for (correlationId, due) in [("c1", 10.0), ("c1", 20.0), ("c2", 30.0)] {
            try store.scheduleTimeout(TimeoutRecord(
                sagaType: "Transfer", correlationId: correlationId, dueAt: date(due), messageType: "Expire",
                body: Data(), createdAt: date(0)))
        }

        #expect(throws: SagaStoreError.conflict(sagaType: "Transfer", correlationId: "c1")) {
            try store.deleteSaga(type: "Transfer", correlationId: "c1", expectedVersion: 7)
        }
        #expect(try store.timeoutCount() == 3)

        try store.deleteSaga(type: "Transfer", correlationId: "c1", expectedVersion: 1)
        #expect(try store.loadSaga(type: "Transfer", correlationId: "c1") == nil)
        #expect(try store.pendingTimeouts(sagaType: "Transfer", correlationId: "c1").isEmpty)
        #expect(try store.pendingTimeouts(sagaType: "Transfer", correlationId: "c2").count == 1)

        // Inside a transaction the delete is a savepoint, so a failed delete leaves the rest intact.
        try store.transaction { tx in
            try tx.recordInbox(messageId: "m", queue: "q", at: date(0))
            #expect(throws: SagaStoreError.self) {
                try tx.deleteSaga(type: "Transfer", correlationId: "c2", expectedVersion: 9)
            }
        }
        #expect(try store.inboxContains(messageId: "m"))
        #expect(try store.timeoutCount() == 1)
    }

    @Test func listAndCount() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        let sagas = [
            record("c3", at: 3), record("c1", at: 1), record("p1", type: "Payout", at: 2), record("c2", at: 4),
        ]
        for saga in sagas { try store.insertSaga(saga) }

        #expect(try store.listSagas().map(\.correlationId) == ["c1", "p1", "c3", "c2"])
        #expect(try store.listSagas(type: "Transfer").map(\.correlationId) == ["c1", "c3", "c2"])
        #expect(try store.listSagas(type: "Transfer", limit: 2).map(\.correlationId) == ["c1", "c3"])
        #expect(try store.listSagas(limit: 1).map(\.correlationId) == ["c1"])
        #expect(try store.listSagas(type: "None").isEmpty)
        #expect(try store.sagaCounts() == ["Transfer": 3, "Payout": 1])
    }
}
