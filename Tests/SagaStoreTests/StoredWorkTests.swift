import Foundation
import Testing
@testable import SagaStore

/// What a store holds to resume, as the endpoint's start record reports it (`StoredWork`).
@Suite struct StoredWorkTests {
    @Test func countsWhatIsLeftToResumeAndNothingElse() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        #expect(try store.storedWork(now: date(100)) == StoredWork(), "a fresh store holds nothing")

        try store.insertSaga(SagaRecord(sagaType: "S", correlationId: "a", state: Data("{}".utf8),
                                        createdAt: date(0), updatedAt: date(0)))
        try store.appendOutbox([
            OutboxRecord(messageId: "1", incomingMessageId: "in", position: 0, exchange: "", routingKey: "q",
                         messageType: "M", body: Data(), createdAt: date(10)),
            OutboxRecord(messageId: "2", incomingMessageId: "in", position: 1, exchange: "", routingKey: "q",
                         messageType: "M", body: Data(), createdAt: date(20)),
            OutboxRecord(messageId: "3", incomingMessageId: "in", position: 2, exchange: "", routingKey: "q",
                         messageType: "M", body: Data(), createdAt: date(5), dispatchedAt: date(6)),
        ])
        func timeout(_ id: String, saga: String, _ correlationId: String, due: Double) -> TimeoutRecord {
            TimeoutRecord(timeoutId: id, sagaType: saga, correlationId: correlationId, dueAt: date(due),
                          messageType: "M", body: Data(), createdAt: date(0))
        }
        try store.scheduleTimeout(timeout("t1", saga: "S", "a", due: 50))
        try store.scheduleTimeout(timeout("t2", saga: "S", "a", due: 200))
        // A saga's timeout whose saga is not stored has no saga row either, but it is no parked message.
        try store.scheduleTimeout(timeout("t3", saga: "S", "gone", due: 30))
        try store.scheduleTimeout(timeout("retry:m:1", saga: "", "m", due: 300))
        try store.recordFailure(messageId: "m", error: "boom", at: date(40))
        _ = try store.countDeliveries(messageIds: ["r"], at: date(60))

        #expect(try store.storedWork(now: date(100)) == StoredWork(
            liveSagas: 1, unconfirmedOutbox: 2, oldestUnconfirmedOutboxAt: date(10), pendingTimeouts: 4,
            overdueTimeouts: 2, earliestOverdueAt: date(30), parkedMessages: 1, failingMessages: 1,
            unfinishedRedeliveries: 1))
    }
}
