import Foundation
import Testing
@testable import SagaStore

@Suite struct OutboxAndTimeoutTests {
    @Test func outboxAppendDispatchAndPurge() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)

        let first = try store.appendOutbox([
            outbox("a2", incoming: "in1", position: 2), outbox("a0", incoming: "in1", position: 0),
            outbox("a1", incoming: "in1", position: 1),
        ])
        try store.appendOutbox([outbox("b0", incoming: "in2", position: 0, createdAt: date(5))])
        #expect(try store.appendOutbox([]).isEmpty)
        #expect(first.allSatisfy { $0.seq != nil })

        #expect(try store.outbox(forIncoming: "in1") == first.sorted { $0.position < $1.position })
        #expect(try store.undispatchedOutbox(limit: 10).map(\.messageId) == ["a0", "a1", "a2", "b0"])
        #expect(try store.undispatchedOutbox(limit: 2).map(\.messageId) == ["a0", "a1"])
        #expect(try store.outboxBacklog() == 4)

        // A batch with a row stored before (same incoming message and position) is rejected as a whole.
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "x1")) {
            try store.appendOutbox([outbox("c0", incoming: "in3", position: 0), outbox("x1", incoming: "in1", position: 1)])
        }
        #expect(try store.outbox(forIncoming: "in3").isEmpty)

        let unknown = OutboxKey(seq: 999)
        #expect(try store.markDispatched([first[1].key, first[2].key].compactMap { $0 } + [unknown], at: date(10)) == 2)
        #expect(try store.markDispatched([first[1].key!], at: date(99)) == 0)  // first time wins
        #expect(try store.outboxBacklog() == 2)
        #expect(try store.undispatchedOutbox().map(\.messageId) == ["a2", "b0"])
        #expect(try store.outbox(forIncoming: "in1").first?.dispatchedAt == date(10))

        #expect(try store.markDispatched([first[0].key!], at: date(30)) == 1)
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
        let original = try store.appendOutbox([outbox("debit-1", incoming: "request", position: 0)])[0]
        let resend = try store.appendOutbox([outbox("debit-1", incoming: "timeout-1", position: 0, createdAt: date(5))])[0]
        #expect(try store.undispatchedOutbox().map(\.incomingMessageId) == ["request", "timeout-1"])
        #expect(try store.markDispatched([resend.key!], at: date(10)) == 1)
        #expect(try store.undispatchedOutbox().map(\.key) == [original.key])
    }

    /// Rows written with their incoming message's inbox row point at it (a sequential key); the inbox
    /// numbers never repeat, so after every inbox row was purged a new message cannot run into the kept
    /// outbox rows of an old one.
    @Test func outboxRowsPointAtTheirInboxRow() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        try store.recordInbox(messageId: "m1", queue: "q", at: date(0))
        let rows = try store.appendOutbox([outbox("o0", incoming: "m1", position: 0), outbox("o1", incoming: "m1", position: 1)])
        #expect(try store.connection.query("SELECT inbox_seq FROM outbox").map { $0[0].integerValue } == [1, 1])
        #expect(try store.outbox(forIncoming: "m1") == rows)
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "x1")) {
            try store.appendOutbox([outbox("x1", incoming: "m1", position: 1)])
        }
        #expect(try store.markDispatched(rows.compactMap(\.key), at: date(1)) == 2)

        #expect(try store.purgeInbox(olderThan: date(10)) == 1)
        try store.recordInbox(messageId: "m2", queue: "q", at: date(11))
        let next = try store.appendOutbox([outbox("p0", incoming: "m2", position: 0)])
        #expect(try store.outbox(forIncoming: "m2") == next)
        #expect(try store.connection.query("SELECT inbox_seq FROM outbox ORDER BY seq").map { $0[0].integerValue } == [1, 1, 2])
    }

    // Found by a code review: failures were only ever cleared when their message came back, so a
    // message that failed once and was then purged or expired kept its row for good.
    @Test func failuresOfMessagesThatNeverCameBackArePurged() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        try store.recordFailure(messageId: "old", error: "boom", at: date(0))
        try store.recordFailure(messageId: "recent", error: "boom", at: date(0))
        try store.recordFailure(messageId: "recent", error: "boom again", at: date(20))
        #expect(try store.purgeFailures(olderThan: date(10)) == 1)
        #expect(try store.failure(messageId: "old") == nil)
        #expect(try store.failure(messageId: "recent")?.attempts == 2)
    }

    // Failed before: a message parked for a delayed retry is not seen while it waits, and its count was purged
    // with those of messages that never came back; its retry then counted from 1 again, for ever.
    @Test func failuresOfParkedMessagesAreKept() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        for id in ["parked", "parked-long-ago", "gone"] { try store.recordFailure(messageId: id, error: "boom", at: date(0)) }
        try store.markRetry(messageId: "parked", dueAt: date(100))
        try store.markRetry(messageId: "parked-long-ago", dueAt: date(5))
        try store.markRetry(messageId: "never-failed", dueAt: date(100))
        #expect(try store.purgeFailures(olderThan: date(10)) == 2)
        #expect(try store.failure(messageId: "gone") == nil)
        #expect(try store.failure(messageId: "parked-long-ago") == nil)
        #expect(try store.failure(messageId: "parked")?.attempts == 1)
        #expect(try store.failure(messageId: "never-failed") == nil)
        // Failing again starts a new wait: the mark goes with the old one.
        try store.recordFailure(messageId: "parked", error: "boom", at: date(1))
        #expect(try store.purgeFailures(olderThan: date(10)) == 1)
    }

    /// A saga's timeouts point at its row; the ids are unique per saga, whether the timeout was scheduled
    /// before the saga was stored (keyed by its ids) or after (keyed by the saga's row number).
    @Test func timeoutsOfAStoredSagaPointAtItsRow() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        func timeout(_ id: String, saga: String, due: Double) -> TimeoutRecord {
            TimeoutRecord(timeoutId: id, sagaType: "Transfer", correlationId: saga, dueAt: date(due),
                          messageType: "Expire", body: Data(), createdAt: date(0))
        }
        try store.scheduleTimeout(timeout("early", saga: "c1", due: 5))
        try store.insertSaga(SagaRecord(sagaType: "Transfer", correlationId: "c1", state: Data("{}".utf8), createdAt: date(0)))
        try store.insertSaga(SagaRecord(sagaType: "Transfer", correlationId: "c2", state: Data("{}".utf8), createdAt: date(0)))
        try store.scheduleTimeout(timeout("t1", saga: "c1", due: 10))
        try store.scheduleTimeout(timeout("t2", saga: "c1", due: 20))
        try store.scheduleTimeout(timeout("t1", saga: "c2", due: 30))
        #expect(throws: SagaStoreError.duplicateMessage(messageId: "t1")) {
            try store.scheduleTimeout(timeout("t1", saga: "c1", due: 40))
        }
        let owners = try store.connection.query("SELECT saga_seq FROM timeouts ORDER BY seq").map { $0[0].integerValue }
        #expect(owners == [nil, 1, 1, 2])

        #expect(try store.pendingTimeouts(sagaType: "Transfer", correlationId: "c1").map(\.timeoutId) == ["early", "t1", "t2"])
        #expect(try store.deleteTimeout(TimeoutKey(sagaType: "Transfer", correlationId: "c1", timeoutId: "t1")))
        #expect(try store.deleteTimeout(TimeoutKey(sagaType: "Transfer", correlationId: "c1", timeoutId: "early")))
        #expect(try !store.deleteTimeout(TimeoutKey(sagaType: "Transfer", correlationId: "c1", timeoutId: "t1")))
        try store.deleteSaga(type: "Transfer", correlationId: "c1", expectedVersion: 1)
        #expect(try store.pendingTimeouts(sagaType: "Transfer", correlationId: "c2").map(\.timeoutId) == ["t1"])
        #expect(try store.timeoutCount() == 1)
    }

    // Before, ties were ordered by timeout id (a hash), so two timeouts one handler asked for with the same
    // delay could fire in the other order than in SagaTesting, which keeps the request order.
    @Test func timeoutsDueTogetherComeInTheOrderTheyWereRequested() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        let ids = ["z-first", "m-second", "a-third"]
        for id in ids {
            try store.scheduleTimeout(TimeoutRecord(
                timeoutId: id, sagaType: "Transfer", correlationId: "c1", dueAt: date(10), messageType: "Expire",
                body: Data(), createdAt: date(0)))
        }
        #expect(try store.dueTimeouts(at: date(10)).map(\.timeoutId) == ids)
        #expect(try store.pendingTimeouts(sagaType: "Transfer", correlationId: "c1").map(\.timeoutId) == ids)
    }

    @Test func dueTimeoutIdsThenRowsByNumber() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        for (id, due) in [("t30", 30.0), ("t10", 10), ("t20", 20)] {
            try store.scheduleTimeout(TimeoutRecord(
                timeoutId: id, sagaType: "Transfer", correlationId: "c-\(id)", dueAt: date(due), messageType: "Expire",
                body: Data(id.utf8), createdAt: date(0)))
        }
        let due = try store.dueTimeoutIds(at: date(25), limit: 10)
        #expect(due.map(\.timeoutId) == ["t10", "t20"])
        #expect(try store.dueTimeoutIds(at: date(100), limit: 1).map(\.timeoutId) == ["t10"])
        // In the order asked for; a row gone meanwhile is left out.
        #expect(try store.timeouts(due.reversed(), dueAt: date(25)).map(\.timeoutId) == ["t20", "t10"])
        let t20 = try #require(try store.dueTimeouts(at: date(25)).last)
        #expect(try store.deleteTimeout(t20.key))
        #expect(try store.timeouts(due, dueAt: date(25)).map(\.timeoutId) == ["t10"])
        // Parked again under its id (the new row may get the old row number): not due, not read.
        var parked = t20
        parked.dueAt = date(500)
        try store.scheduleTimeout(parked)
        #expect(try store.timeouts(due, dueAt: date(25)).map(\.timeoutId) == ["t10"])
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
