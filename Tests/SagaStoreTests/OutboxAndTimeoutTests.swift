import Foundation
import Testing
@testable import SagaStore

@Suite struct OutboxAndTimeoutTests {
    @Test func outboxAppendDispatchAndPurge() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        let first = [outbox("a2", incoming: "in1", position: 2), outbox("a0", incoming: "in1", position: 0),
                     outbox("a1", incoming: "in1", position: 1)]
        let second = [outbox("b0", incoming: "in2", position: 0, createdAt: date(5))]
        try store.appendOutbox(first)
        try store.appendOutbox(second)
        try store.appendOutbox([])

        #expect(try store.outbox(forIncoming: "in1") == first.sorted { $0.position < $1.position })
        #expect(try store.undispatchedOutbox(limit: 10).map(\.messageId) == ["a0", "a1", "a2", "b0"])
        #expect(try store.undispatchedOutbox(limit: 2).map(\.messageId) == ["a0", "a1"])
        #expect(try store.outboxBacklog() == 4)

        // A batch with a duplicate id is rejected as a whole.
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "a1")) {
            try store.appendOutbox([outbox("c0", incoming: "in3", position: 0), outbox("a1", incoming: "in3", position: 1)])
        }
        #expect(try store.outbox(forIncoming: "in3").isEmpty)

        #expect(try store.markDispatched(messageIds: ["a0", "a1", "unknown"], at: date(10)) == 2)
        #expect(try store.markDispatched(messageIds: ["a0"], at: date(99)) == 0)  // first time wins
        #expect(try store.outboxBacklog() == 2)
        #expect(try store.undispatchedOutbox().map(\.messageId) == ["a2", "b0"])
        #expect(try store.outbox(forIncoming: "in1").first?.dispatchedAt == date(10))

        #expect(try store.markDispatched(messageIds: ["a2"], at: date(30)) == 1)
        #expect(try store.purgeDispatchedOutbox(olderThan: date(20)) == 2)  // a0, a1; a2 is too recent
        #expect(try store.outbox(forIncoming: "in1").map(\.messageId) == ["a2"])
        #expect(try store.purgeDispatchedOutbox(olderThan: date(1000)) == 1)
        #expect(try store.outbox(forIncoming: "in2").count == 1)  // never purged while undispatched
    }

    @Test func dueTimeoutsInOrderAndNextDue() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        #expect(try store.nextTimeoutDue() == nil)
        #expect(try store.dueTimeouts(at: date(1000)).isEmpty)

        func timeout(_ id: String, due: Double, saga: String = "c1") -> TimeoutRecord {
            TimeoutRecord(
                timeoutId: id, sagaType: "Transfer", correlationId: saga, dueAt: date(due), messageType: "Expire",
                body: Data(id.utf8), headers: ["id": id], createdAt: date(0))
        }
        let timeouts = [timeout("t30", due: 30), timeout("t10", due: 10), timeout("t20", due: 20, saga: "c2")]
        for record in timeouts { try store.scheduleTimeout(record) }
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "t10")) {
            try store.scheduleTimeout(timeout("t10", due: 50))
        }

        #expect(try store.timeoutCount() == 3)
        #expect(try store.nextTimeoutDue() == date(10))
        #expect(try store.dueTimeouts(at: date(5)).isEmpty)
        #expect(try store.dueTimeouts(at: date(20)) == [timeouts[1], timeouts[2]])  // due_at <= now
        #expect(try store.dueTimeouts(at: date(100), limit: 1).map(\.timeoutId) == ["t10"])
        #expect(try store.pendingTimeouts(sagaType: "Transfer", correlationId: "c1").map(\.timeoutId) == ["t10", "t30"])

        #expect(try store.deleteTimeout(timeouts[1].key))
        #expect(try !store.deleteTimeout(timeouts[1].key))
        #expect(try store.nextTimeoutDue() == date(20))

        #expect(try store.cancelTimeouts(sagaType: "Transfer", correlationId: "c1") == 1)
        #expect(try store.timeoutCount() == 1)
    }
}
