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

        // A batch with a row stored before (same incoming message and position) is rejected as a whole.
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "x1")) {
            try store.appendOutbox([outbox("c0", incoming: "in3", position: 0), outbox("x1", incoming: "in1", position: 1)])
        }
        #expect(try store.outbox(forIncoming: "in3").isEmpty)

        let unknown = OutboxKey(incomingMessageId: "in9", position: 0)
        #expect(try store.markDispatched([first[1].key, first[2].key, unknown], at: date(10)) == 2)
        #expect(try store.markDispatched([first[1].key], at: date(99)) == 0)  // first time wins
        #expect(try store.outboxBacklog() == 2)
        #expect(try store.undispatchedOutbox().map(\.messageId) == ["a2", "b0"])
        #expect(try store.outbox(forIncoming: "in1").first?.dispatchedAt == date(10))

        #expect(try store.markDispatched([first[0].key], at: date(30)) == 1)
        #expect(try store.purgeDispatchedOutbox(olderThan: date(20)) == 2)  // a0, a1; a2 is too recent
        #expect(try store.outbox(forIncoming: "in1").map(\.messageId) == ["a2"])
        #expect(try store.purgeDispatchedOutbox(olderThan: date(1000)) == 1)
        #expect(try store.outbox(forIncoming: "in2").count == 1)  // never purged while undispatched
    }

    /// A saga sending a command again under its first id (after a timeout) does so from another incoming
    /// message: the copy gets a row of its own, and each row is marked by its own key.
    @Test func outgoingIdMayRepeatAcrossIncomingMessages() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        let original = outbox("debit-1", incoming: "request", position: 0)
        let resend = outbox("debit-1", incoming: "timeout-1", position: 0, createdAt: date(5))
        try store.appendOutbox([original])
        try store.appendOutbox([resend])
        #expect(try store.undispatchedOutbox().map(\.incomingMessageId) == ["request", "timeout-1"])
        #expect(try store.markDispatched([resend.key], at: date(10)) == 1)
        #expect(try store.undispatchedOutbox().map(\.key) == [original.key])
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
