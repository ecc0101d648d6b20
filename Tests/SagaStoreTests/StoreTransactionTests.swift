import Foundation
import Testing
@testable import SagaStore

@Suite struct StoreTransactionTests {
    @Test func transactionRollbackOnThrowLeavesNothing() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        #expect(throws: TestError()) {
            try store.transaction { tx in
                try tx.recordInbox(messageId: "m1", queue: "q", at: date(0))
                try tx.insertSaga(SagaRecord(sagaType: "T", correlationId: "c", state: Data("{}".utf8), createdAt: date(0)))
                try tx.appendOutbox([outbox("o1", incoming: "m1", position: 0)])
                try tx.scheduleTimeout(TimeoutRecord(
                    sagaType: "T", correlationId: "c", dueAt: date(10), messageType: "Tick", body: Data(), createdAt: date(0)))
                throw TestError()
            }
        }
        #expect(try !store.inboxContains(messageId: "m1"))
        #expect(try store.loadSaga(type: "T", correlationId: "c") == nil)
        #expect(try store.outboxBacklog() == 0)
        #expect(try store.timeoutCount() == 0)
    }

    @Test func committedTransactionReturnsTheBodysValue() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        let value = try store.transaction { tx in
            try tx.recordInbox(messageId: "m1", queue: "q", at: date(0))
            return 42
        }
        #expect(value == 42)
        #expect(try store.inboxContains(messageId: "m1"))
    }

    @Test func savepointRollbackUndoesOnlyItselfInsideATransaction() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        try store.transaction { tx in
            try tx.recordInbox(messageId: "before", queue: "q", at: date(0))
            #expect(throws: TestError()) {
                try tx.savepoint {
                    try tx.recordInbox(messageId: "inside", queue: "q", at: date(0))
                    // Nested savepoint that succeeds, then the outer one fails: both are undone.
                    try tx.savepoint { try tx.recordInbox(messageId: "nested", queue: "q", at: date(0)) }
                    throw TestError()
                }
            }
            try tx.recordInbox(messageId: "after", queue: "q", at: date(0))
        }
        #expect(try store.inboxContains(messageId: "before"))
        #expect(try !store.inboxContains(messageId: "inside"))
        #expect(try !store.inboxContains(messageId: "nested"))
        #expect(try store.inboxContains(messageId: "after"))
    }

    @Test func inboxDetectsDuplicates() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        #expect(try !store.inboxContains(messageId: "m1"))
        try store.recordInbox(messageId: "m1", queue: "q", at: date(0))
        #expect(try store.inboxContains(messageId: "m1"))
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "m1")) {
            try store.recordInbox(messageId: "m1", queue: "q", at: date(1))
        }
        // Inside a transaction the duplicate aborts the handling; the transaction is rolled back.
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "m1")) {
            try store.transaction { tx in
                try tx.recordInbox(messageId: "m2", queue: "q", at: date(1))
                try tx.recordInbox(messageId: "m1", queue: "q", at: date(1))
            }
        }
        #expect(try !store.inboxContains(messageId: "m2"))

        try store.recordInbox(messageId: "m3", queue: "q", at: date(100))
        #expect(try store.purgeInbox(olderThan: date(50)) == 1)
        #expect(try !store.inboxContains(messageId: "m1"))
        #expect(try store.inboxContains(messageId: "m3"))
    }

    @Test func failuresAreUpserted() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        #expect(try store.failure(messageId: "m1") == nil)
        let first = try store.recordFailure(messageId: "m1", error: "boom", at: date(0), retryAfter: date(5))
        #expect(first == FailureRecord(
            messageId: "m1", attempts: 1, firstFailureAt: date(0), lastFailureAt: date(0), lastError: "boom",
            retryAfter: date(5)))
        let second = try store.recordFailure(messageId: "m1", error: "bang", at: date(10))
        #expect(second == FailureRecord(
            messageId: "m1", attempts: 2, firstFailureAt: date(0), lastFailureAt: date(10), lastError: "bang",
            retryAfter: nil))
        #expect(try store.failure(messageId: "m1") == second)
        #expect(try store.clearFailure(messageId: "m1"))
        #expect(try store.failure(messageId: "m1") == nil)
        #expect(try !store.clearFailure(messageId: "m1"))
    }
}

func outbox(_ id: String, incoming: String, position: Int, createdAt: Date = date(0)) -> OutboxRecord {
    OutboxRecord(
        messageId: id, incomingMessageId: incoming, position: position, exchange: "ex", routingKey: "rk.\(id)",
        mandatory: position % 2 == 0, messageType: "Msg", correlationId: position == 0 ? nil : "corr",
        replyTo: position == 0 ? "replies" : nil, headers: ["h": id, "x-n": "\(position)"],
        body: Data("body-\(id)".utf8), createdAt: createdAt)
}
