import Foundation
import InMemoryTracing
import Logging
import SagaStore
import Sagas
import Testing
import Tracing
@testable import SagaEndpoint

/// Saga handlers that run before the transaction (on the pool, against states read on a second
/// connection) must give exactly what running them inside the transaction gives, also when the states
/// they read change before it commits. No broker: the StoreWorker and the reader on their own.
@Suite("Handlers run ahead of the transaction")
struct HandlersAheadTests {
    /// A store with `OrderSaga`, its worker, and handlers-ahead on a reader of the same file.
    struct Fixture {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("handlers-ahead-\(UUID().uuidString).sqlite").path
        let worker: StoreWorker
        let ahead: HandlersAhead

        init() async throws {
            let dispatcher = MessageDispatcher(registry: OrderSaga.registry(earlyPayment: .errorQueue),
                                               endpointAddress: OrderSaga.queue)
            worker = try await StoreWorker.open(path: path, durable: true, dispatcher: dispatcher, logger: Logger(label: "test"))
            ahead = HandlersAhead(dispatcher: dispatcher, reader: try await SagaStateReader.open(path: path, logger: Logger(label: "test")),
                                  timing: HandlerTiming(timer: nil))
        }

        func remove() {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }

        func order(_ id: String) throws -> OrderSaga? {
            let store = try SagaStore(path: path)
            return try store.loadSaga(type: OrderSaga.sagaType, correlationId: id).map {
                try JSONDecoder().decode(OrderSaga.self, from: $0.state)
            }
        }

        /// Commits `OrderSaga.Placed` for `order` the ordinary way (handlers inside the transaction).
        func place(_ order: String, messageId: String) async throws {
            let placed = try HandlersAheadTests.item(messageId, OrderSaga.Placed(orderId: order, remindAfterMs: nil))
            _ = await worker.processBatch([placed], now: Date())
        }

        func version(_ id: String) throws -> Int? {
            try SagaStore(path: path).loadSaga(type: OrderSaga.sagaType, correlationId: id)?.version
        }
    }

    static func item<M: Message>(_ messageId: String, _ message: M) throws -> WorkItem {
        WorkItem(incoming: IncomingMessage(messageId: messageId, type: M.messageType,
                                           body: try MessageCoding.encode(message), queue: OrderSaga.queue))
    }

    /// A saga's own timeout, as the endpoint hands a due row to the pipeline.
    static func reminder(_ messageId: String, order: String) throws -> WorkItem {
        var incoming = IncomingMessage(messageId: messageId, type: OrderSaga.Remind.messageType,
                                       body: try MessageCoding.encode(OrderSaga.Remind()), queue: OrderSaga.queue)
        incoming.timeoutTarget = SagaInstanceKey(sagaType: OrderSaga.sagaType, correlationId: order)
        return WorkItem(incoming: incoming)
    }

    @Test("messages of one saga in one batch see each other's writes; the results are applied, not rerun")
    func batchOrderIsKept() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        let items = try await fixture.ahead.run([
            Self.item("m1", OrderSaga.Placed(orderId: "o1", remindAfterMs: nil)),
            Self.reminder("m2", order: "o1"),
            Self.reminder("m3", order: "o1"),
            Self.item("m4", OrderSaga.Paid(orderId: "o1")),
            Self.item("m5", OrderSaga.Placed(orderId: "o2", remindAfterMs: nil)),
            Self.item("m6", OrderSaga.Close(orderId: "o2")),
        ], now: Date()).items
        #expect(items.allSatisfy { $0.speculation != nil })
        let results = await fixture.worker.processBatch(items, now: Date())
        #expect(results.allSatisfy { if case .processed = $0 { true } else { false } })
        #expect(await fixture.worker.handlerReruns == 0)
        #expect(try fixture.order("o1") == OrderSaga(orderId: "o1", paid: true, reminders: 2))
        #expect(try fixture.version("o1") == 4)
        #expect(try fixture.order("o2") == nil, "started and completed in the same batch")
        guard case .processed(let outbox, _) = results[2] else { return }
        #expect(outbox.map(\.messageId) == [outgoingId("m3", OrderSaga.sagaType, "1")])
    }

    @Test("a state changed after it was read (by the previous batch) makes the handler run again in the transaction")
    func staleReadRunsAgain() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        try await fixture.place("o1", messageId: "m1")
        // Read ahead while the order has no reminder yet...
        let ahead = try await fixture.ahead.run([Self.reminder("m2", order: "o1")], now: Date()).items
        // ...then the previous batch commits one.
        _ = await fixture.worker.processBatch([try Self.reminder("m3", order: "o1")], now: Date())
        let results = await fixture.worker.processBatch(ahead, now: Date())
        guard case .processed = results[0] else {
            Issue.record("unexpected \(results)")
            return
        }
        #expect(await fixture.worker.handlerReruns == 1)
        #expect(try fixture.order("o1")?.reminders == 2, "both reminders counted")
        #expect(try fixture.version("o1") == 3)
        // A copy of a message whose read-ahead state changed is a duplicate: nothing runs again.
        let copy = try await fixture.ahead.run([Self.reminder("m2", order: "o1")], now: Date()).items
        _ = await fixture.worker.processBatch([try Self.reminder("m4", order: "o1")], now: Date())
        let again = await fixture.worker.processBatch(copy, now: Date())
        guard case .duplicate = again[0] else {
            Issue.record("unexpected \(again)")
            return
        }
        #expect(await fixture.worker.handlerReruns == 1)
    }

    @Test("the next batch takes the states the batch still committing wrote: no stale read, nothing rerun")
    func nextBatchInheritsWrites() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        try await fixture.place("o1", messageId: "m1")
        let first = try await fixture.ahead.run([Self.reminder("m2", order: "o1")], now: Date())
        // Read ahead while the first batch has not committed yet.
        let second = try await fixture.ahead.run([Self.reminder("m3", order: "o1"),
                                                  Self.item("m4", OrderSaga.Close(orderId: "o1"))],
                                                 after: first.written, now: Date())
        let third = try await fixture.ahead.run([Self.item("m5", OrderSaga.Placed(orderId: "o1", remindAfterMs: nil))],
                                                after: second.written, now: Date())
        _ = await fixture.worker.processBatch(first.items, now: Date())
        _ = await fixture.worker.processBatch(second.items, now: Date())
        #expect(try fixture.order("o1") == nil, "completed after two reminders")
        _ = await fixture.worker.processBatch(third.items, now: Date())
        #expect(await fixture.worker.handlerReruns == 0)
        #expect(try fixture.order("o1") == OrderSaga(orderId: "o1"), "started again")
        // A batch passes on only its own writes: the second batch wrote o1, not o2.
        let fourth = try await fixture.ahead.run([Self.item("m6", OrderSaga.Placed(orderId: "o2", remindAfterMs: nil))],
                                                 after: third.written, now: Date())
        #expect(Set(second.written.keys) == [SagaInstanceKey(sagaType: OrderSaga.sagaType, correlationId: "o1")])
        #expect(Set(fourth.written.keys) == [SagaInstanceKey(sagaType: OrderSaga.sagaType, correlationId: "o2")])
    }

    @Test("an instance replaced by a new one at the same version is not mistaken for the one that was read")
    func replacedInstanceRunsAgain() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        try await fixture.place("o1", messageId: "m1")
        let ahead = try await fixture.ahead.run([Self.item("m2", OrderSaga.Paid(orderId: "o1"))], now: Date()).items
        // Completed and started again: a new instance, at version 1 like the one read.
        _ = await fixture.worker.processBatch([try Self.item("m3", OrderSaga.Close(orderId: "o1")),
                                               try Self.item("m4", OrderSaga.Placed(orderId: "o1", remindAfterMs: nil))],
                                              now: Date())
        let results = await fixture.worker.processBatch(ahead, now: Date())
        guard case .processed = results[0] else {
            Issue.record("unexpected \(results)")
            return
        }
        #expect(await fixture.worker.handlerReruns == 1)
        #expect(try fixture.order("o1")?.paid == true)
    }

    @Test("failures, not-found policies and duplicates ahead of the transaction end as they do inside it")
    func failuresAndDuplicates() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        try await fixture.place("o1", messageId: "m1")
        var malformed = try Self.item("m3", OrderSaga.Placed(orderId: "o3", remindAfterMs: nil))
        malformed.incoming.body = Data("{".utf8)
        let items = try await fixture.ahead.run([
            Self.item("m1", OrderSaga.Placed(orderId: "o1", remindAfterMs: nil)),  // seen before
            Self.item("m2", OrderSaga.Cancelled(orderId: "nobody")),  // not found: error queue
            malformed,
            Self.item("m4", OrderSaga.Placed(orderId: "o4", remindAfterMs: nil)),
            Self.item("m4", OrderSaga.Placed(orderId: "o4", remindAfterMs: nil)),  // a copy in the same batch
        ], now: Date()).items
        let results = await fixture.worker.processBatch(items, now: Date())
        guard case .duplicate = results[0], case .notFound(.errorQueue, _) = results[1], case .failed = results[2],
              case .processed = results[3], case .duplicate = results[4] else {
            Issue.record("unexpected \(results)")
            return
        }
        #expect(await fixture.worker.handlerReruns == 0)
        let store = try SagaStore(path: fixture.path)
        #expect(try !store.inboxContains(messageId: "m2") && !store.inboxContains(messageId: "m3"))
        #expect(try store.inboxContains(messageId: "m4"))
        #expect(try fixture.version("o4") == 1)
    }

    @Test("handler spans say which run ran ahead: a message run again shows both, only the kept one without the mark")
    func handlerSpansMarkTheRunAhead() async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        let tracer = InMemoryTracer()
        func traced(_ item: WorkItem) -> WorkItem {
            var item = item
            item.tracing = MessageTracing(tracer: tracer, context: .topLevel)
            return item
        }
        try await fixture.place("o1", messageId: "m1")
        let ahead = try await fixture.ahead.run([traced(Self.reminder("m2", order: "o1")),
                                                 traced(Self.item("m3", OrderSaga.Placed(orderId: "o2", remindAfterMs: nil)))],
                                                now: Date()).items
        _ = await fixture.worker.processBatch([try Self.reminder("m4", order: "o1")], now: Date())
        _ = await fixture.worker.processBatch(ahead, now: Date())
        #expect(await fixture.worker.handlerReruns == 1)
        func marks(_ messageId: String) -> [Bool] {
            tracer.finishedSpans.filter { $0.attributes.get("messaging.message.id") == .string(messageId) }
                .map { $0.attributes.get("saga.ahead_of_commit") == .bool(true) }
        }
        #expect(marks("m2") == [true, false], "ran ahead, then again in the transaction")
        #expect(marks("m3") == [true], "ran ahead and kept")
    }
}
