import Foundation
import Logging
import SagaStore
import Sagas
import Testing
@testable import SagaEndpoint

/// A StoreWorker on a temporary SQLite file, with the test sagas registered.
struct StoreWorkerFixture {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("store-worker-\(UUID().uuidString).sqlite").path
    let worker: StoreWorker

    init(busyTimeout: Duration = .seconds(5), markFlushDelay: Duration = .milliseconds(50)) async throws {
        var registry = HandlerRegistry()
        registry.register(LedgerSaga.self)
        registry.register(OrderSaga.self) { OrderSaga.define(&$0, earlyPayment: .errorQueue) }
        let dispatcher = MessageDispatcher(registry: registry, endpointAddress: "ledgers")
        worker = try await StoreWorker.open(path: path, durable: true, busyTimeout: busyTimeout, dispatcher: dispatcher,
                                            markFlushDelay: markFlushDelay, logger: Logger(label: "test"))
    }

    func remove() {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// `LedgerSaga.Open` with message id `m-<id>`; its handler throws when `fail` is set.
    static func open(_ id: String, fail: Bool = false) throws -> WorkItem {
        WorkItem(incoming: IncomingMessage(
            messageId: "m-\(id)", type: LedgerSaga.Open.messageType,
            body: try MessageCoding.encode(LedgerSaga.Open(ledgerId: id, fail: fail)), queue: LedgerSaga.queue))
    }
}

/// The store side of a group commit: a batch is committed in one transaction without savepoints; when one
/// message fails, the batch is run again with a savepoint per message so that only the failing one is
/// rolled back. No broker is involved: this is the StoreWorker on its own.
@Suite("Group commit in the store")
struct GroupCommitTests {
    private func open(_ id: String, fail: Bool) throws -> WorkItem { try StoreWorkerFixture.open(id, fail: fail) }

    private func paid(_ id: String) throws -> WorkItem {
        WorkItem(incoming: IncomingMessage(
            messageId: "p-\(id)", type: OrderSaga.Paid.messageType,
            body: try MessageCoding.encode(OrderSaga.Paid(orderId: id)), queue: OrderSaga.queue))
    }

    @Test("a failing message in the middle of a batch rolls back only itself; the others commit")
    func failingMessageRollsBackAlone() async throws {
        let fixture = try await StoreWorkerFixture()
        defer { fixture.remove() }
        let (path, worker) = (fixture.path, fixture.worker)
        let items = [try open("a", fail: false), try open("b", fail: true), try paid("nobody"), try open("c", fail: false)]
        let results = await worker.processBatch(items, now: Date())

        #expect(results.count == 4)
        guard case .processed(let outboxA, _) = results[0], case .failed(let error) = results[1],
              case .notFound(.errorQueue, _) = results[2], case .processed(let outboxC, _) = results[3] else {
            Issue.record("unexpected results \(results)")
            return
        }
        #expect(error is LedgerSaga.Refused)
        #expect(outboxA.count == 1 && outboxC.count == 1)

        let store = try SagaStore(path: path)
        #expect(try store.inboxContains(messageId: "m-a") && store.inboxContains(messageId: "m-c"))
        #expect(try !store.inboxContains(messageId: "m-b"), "the failed message is not marked processed")
        #expect(try !store.inboxContains(messageId: "p-nobody"), "a not-found message is handled later, as a whole")
        #expect(try store.loadSaga(type: LedgerSaga.sagaType, correlationId: "b") == nil)
        #expect(try store.loadSaga(type: LedgerSaga.sagaType, correlationId: "a") != nil)
        #expect(try store.outbox(forIncoming: "m-b").isEmpty)
        #expect(try store.undispatchedOutbox(limit: 10).map(\.incomingMessageId).sorted() == ["m-a", "m-c"])
    }

    @Test("a batch that succeeds commits every message once; a second copy of each is a duplicate")
    func wholeBatchThenDuplicates() async throws {
        let fixture = try await StoreWorkerFixture()
        defer { fixture.remove() }
        let (path, worker) = (fixture.path, fixture.worker)
        let items = try (0..<50).map { try open("l\($0)", fail: false) }
        let first = await worker.processBatch(items, now: Date())
        #expect(first.allSatisfy { if case .processed = $0 { true } else { false } })
        // As the pipeline's publish stage does when its confirms do not come: the rows are released unmarked.
        for case .processed(let outbox, _) in first { worker.publishing.remove(outbox.map(\.messageId)) }
        let again = await worker.processBatch(items, now: Date())
        #expect(again.allSatisfy { if case .duplicate(let undispatched) = $0 { undispatched.count == 1 } else { false } })
        let store = try SagaStore(path: path)
        #expect(try store.sagaCounts()[LedgerSaga.sagaType] == 50)
        #expect(try store.outboxBacklog() == 50)
    }
}

@Suite("Delivery counts of duplicates")
struct DuplicateDeliveryCountTests {
    // Regression: copies of one message id (a producer's duplicate) share a delivery count, and a copy
    // recognised as a duplicate did not clear it. In the chaos test every kill while such copies were in
    // flight added to the count until an innocent duplicate was error-queued as poison.
    @Test("a redelivered copy recognised as a duplicate clears the message's delivery count")
    func duplicateClearsCount() async throws {
        let fixture = try await StoreWorkerFixture()
        defer { fixture.remove() }
        let worker = fixture.worker
        var item = try StoreWorkerFixture.open("dup")
        let first = await worker.processBatch([item], now: Date())
        guard case .processed = first[0] else { Issue.record("not processed: \(first)"); return }

        // The second copy comes back redelivered after several crashes.
        for _ in 0..<5 { _ = await worker.countDeliveries(["m-dup"], now: Date()) }
        item.wasRedelivered = true
        let copy = await worker.processBatch([item], now: Date())
        guard case .duplicate = copy[0] else { Issue.record("not a duplicate: \(copy)"); return }
        // Counted afresh: a first redelivery is 2 (the original delivery was 1), not 7.
        #expect(await worker.countDeliveries(["m-dup"], now: Date())["m-dup"] == 2)
    }
}

@Suite("Duplicates while the first copy's messages are being published")
struct DuplicateWhilePublishingTests {
    // Regression: the next batch's transaction runs while the previous batch publishes. A duplicate in it
    // read the outbox rows as undispatched and, if the publishing batch forgot them before the duplicate's
    // plan looked, published them a second time (seen as an extra terminal event in the contract test).
    // The store now leaves out rows still being published, right where it reads them.
    @Test("rows still being published are not handed to a duplicate; once forgotten unconfirmed, they are")
    func publishingRowsAreLeftOut() async throws {
        let fixture = try await StoreWorkerFixture()
        defer { fixture.remove() }
        let worker = fixture.worker
        let item = try StoreWorkerFixture.open("pub")
        guard case .processed(let outbox, _) = await worker.processBatch([item], now: Date())[0] else {
            Issue.record("not processed")
            return
        }
        worker.publishing.insert(outbox.map(\.messageId))
        guard case .duplicate(let whilePublishing) = await worker.processBatch([item], now: Date())[0] else {
            Issue.record("not a duplicate")
            return
        }
        #expect(whilePublishing.isEmpty)
        // The publish was not confirmed: the rows stay undispatched and a later copy sends them again.
        worker.publishing.remove(outbox.map(\.messageId))
        guard case .duplicate(let afterwards) = await worker.processBatch([item], now: Date())[0] else {
            Issue.record("not a duplicate")
            return
        }
        #expect(afterwards.map(\.messageId) == outbox.map(\.messageId))
    }

    // Regression (a CI run of the crash test, "after-commit"): the restarted endpoint's housekeeping read
    // the unconfirmed rows and published them while the redelivered request, a duplicate, was handed the
    // same rows and published them too: two copies of the command from one restart. Each now claims the
    // rows where it reads them, on the store's thread, and the other one leaves them out.
    @Test("housekeeping's re-send and a duplicate's claim the unconfirmed rows: one of them sends them")
    func housekeepingAndDuplicateSendOnce() async throws {
        let fixture = try await StoreWorkerFixture()
        defer { fixture.remove() }
        let worker = fixture.worker
        let item = try StoreWorkerFixture.open("crashed")
        guard case .processed(let outbox, _) = await worker.processBatch([item], now: Date())[0] else {
            Issue.record("not processed")
            return
        }
        let ids = outbox.map(\.messageId)
        #expect(!ids.isEmpty)
        let later = Date().addingTimeInterval(60)
        // The batch that committed them claimed them: housekeeping leaves them alone, however old.
        #expect(try await worker.claimUnconfirmedOutbox(createdBefore: later, cursor: OutboxCursor(), limit: 10).rows.isEmpty)
        // The batch's publish was not confirmed (the process died, say): it released them unmarked.
        worker.publishing.remove(ids)

        // Housekeeping first: the duplicate gets nothing to send.
        let resent = try await worker.claimUnconfirmedOutbox(createdBefore: later, cursor: OutboxCursor(), limit: 10).rows
        #expect(resent.map(\.messageId) == ids)
        guard case .duplicate(let whileResending) = await worker.processBatch([item], now: Date())[0] else {
            Issue.record("not a duplicate")
            return
        }
        #expect(whileResending.isEmpty, "housekeeping is sending them")
        #expect(try await worker.claimUnconfirmedOutbox(createdBefore: later, cursor: OutboxCursor(), limit: 10).rows.isEmpty, "claimed once")

        // The re-send was not confirmed and released: a duplicate first, then housekeeping gets nothing.
        worker.publishing.remove(ids)
        guard case .duplicate(let afterwards) = await worker.processBatch([item], now: Date())[0] else {
            Issue.record("not a duplicate")
            return
        }
        #expect(afterwards.map(\.messageId) == ids)
        #expect(try await worker.claimUnconfirmedOutbox(createdBefore: later, cursor: OutboxCursor(), limit: 10).rows.isEmpty,
                "the duplicate's batch is sending them")
        // Rows younger than the cutoff are the pipeline's own, never housekeeping's.
        worker.publishing.remove(ids)
        #expect(try await worker.claimUnconfirmedOutbox(createdBefore: Date.distantPast, cursor: OutboxCursor(), limit: 10).rows.isEmpty)
        #expect(try await worker.claimUnconfirmedOutbox(createdBefore: later, cursor: OutboxCursor(), limit: 10).rows.map(\.messageId) == ids)
    }
}
