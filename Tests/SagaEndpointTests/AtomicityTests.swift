import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import MoneyTransfer
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// One transaction per message: inbox row, saga state, outbox and timeouts commit together or not at all;
/// outgoing messages are published after the commit (mandatory, with confirms) under deterministic ids,
/// and the delivery is acked only once they are confirmed.
@Suite("Atomic processing and publishing", .timeLimit(.minutes(6)))
struct AtomicityTests {
    @Test("state, outbox, timeout and inbox row of a message are committed together, with deterministic ids")
    func committedTogether() async throws {
        let harness = try await EndpointHarness.make()
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                             database: "sagas")
        try await harness.send(TransferRequested(transferId: "t-a", fromAccount: "a", toAccount: "b", amount: 3),
                               to: "transfers", messageId: "req-a")
        let debit = try #require(try await harness.receive(from: "bank", count: 1).first)
        // incoming id / handler / position: the same after any crash and re-processing.
        #expect(debit.properties.messageId == outgoingId("req-a", "TransferSaga", "1"))
        #expect(debit.properties.deliveryMode == .persistent)
        try await waitUntil(timeout: .seconds(20)) {
            try await harness.rowCount("sagas", "outbox", where: "dispatched_at IS NOT NULL") == 1
        }
        let (inbox, outbox, timeouts, saga) = try await harness.withStore("sagas") { store in
            (try store.inboxContains(messageId: "req-a"), try store.outbox(forIncoming: "req-a"),
             try store.pendingTimeouts(sagaType: TransferSaga.sagaType, correlationId: "t-a"),
             try store.loadSaga(type: TransferSaga.sagaType, correlationId: "t-a"))
        }
        #expect(inbox)
        #expect(outbox.map(\.messageId) == [outgoingId("req-a", "TransferSaga", "1")])
        #expect(outbox.first?.mandatory == true)
        #expect(timeouts.map(\.timeoutId) == [outgoingId("req-a", "TransferSaga", "t2")])
        #expect(saga?.version == 1)
        #expect(saga.map { $0.createdAt == outbox.first?.createdAt && $0.createdAt == timeouts.first?.createdAt } == true,
                "one transaction, one clock reading")
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("a handler that throws after emitting leaves nothing: no state, outbox, timeout or inbox row")
    func failedHandlerLeavesNoTrace() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(LedgerSaga.queue)
        try await harness.declareQueue(LedgerSaga.outQueue)
        var registry = HandlerRegistry()
        registry.register(LedgerSaga.self)
        let endpoint = harness.startEndpoint(registry, queues: [LedgerSaga.queue], database: "ledgers") {
            $0.immediateRetries = 0
            $0.delayedRetries = []
        }
        try await harness.send(LedgerSaga.Open(ledgerId: "l-bad", fail: true), to: LedgerSaga.queue, messageId: "open-bad")
        try await harness.send(LedgerSaga.Open(ledgerId: "l-good", fail: false), to: LedgerSaga.queue, messageId: "open-good")

        let failed = try #require(try await harness.errorMessages(of: LedgerSaga.queue, count: 1).first)
        #expect(failed.properties.messageId == "open-bad")
        #expect(failed.header("x-error-reason")?.contains("refused") == true)
        let out = try await harness.drain(LedgerSaga.outQueue)
        #expect(out.map(\.properties.messageId) == [outgoingId("open-good", "Ledger", "1")])
        let (sagas, outbox, timeouts, inbox) = try await harness.withStore("ledgers") { store in
            (try store.listSagas().map(\.correlationId),
             try store.connection.query("SELECT message_id FROM outbox").map { $0[0].textValue ?? "" },
             try store.connection.query("SELECT timeout_id FROM timeouts").map { $0[0].textValue ?? "" },
             try store.connection.query("SELECT message_id FROM inbox").map { $0[0].textValue ?? "" })
        }
        #expect(sagas == ["l-good"])
        #expect(outbox == [outgoingId("open-good", "Ledger", "1")])
        #expect(timeouts == [outgoingId("open-good", "Ledger", "t2")])
        #expect(inbox == ["open-good"])
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("commands are mandatory: an unroutable one stays in the outbox, unmarked, and is sent again once its queue exists")
    func unroutableCommandStaysInTheOutbox() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(LedgerSaga.queue)
        var registry = HandlerRegistry()
        registry.register(LedgerSaga.self)
        var endpoint = harness.startEndpoint(registry, queues: [LedgerSaga.queue], database: "ledgers") {
            $0.outboxRedispatchDelay = .seconds(3600)
        }
        try await harness.send(LedgerSaga.Notify(ledgerId: "l-1"), to: LedgerSaga.queue, messageId: "notify-1")
        // Committed, but the command's queue does not exist: returned, so never marked dispatched; the
        // delivery is acknowledged (the command is safe in the outbox), not held in front of its queue.
        try await waitUntil(timeout: .seconds(30)) {
            try await harness.rowCount("ledgers", "inbox", where: "message_id = 'notify-1'") == 1
        }
        try await waitUntil(timeout: .seconds(30), message: "the delivery acknowledged") {
            try await harness.depth(LedgerSaga.queue) == 0
        }
        await harness.stop(endpoint)
        #expect(try await harness.rowCount("ledgers", "outbox", where: "dispatched_at IS NULL") == 1)
        #expect(try await harness.depth(LedgerSaga.queue + ".error") == 0)

        // Once the queue exists, housekeeping re-sends the command (same id) and marks it dispatched.
        try await harness.declareQueue(LedgerSaga.noticesQueue)
        endpoint = harness.startEndpoint(registry, queues: [LedgerSaga.queue], database: "ledgers") {
            $0.outboxRedispatchDelay = .milliseconds(200)
        }
        let notices = try await harness.receive(from: LedgerSaga.noticesQueue, count: 1, timeout: .seconds(30))
        #expect(notices.map(\.properties.messageId) == [outgoingId("notify-1", "Ledger", "1")])
        try await waitUntil(timeout: .seconds(30)) {
            try await harness.rowCount("ledgers", "outbox", where: "dispatched_at IS NULL") == 0
        }
        await harness.stop(endpoint)
        #expect(try await harness.rowCount("ledgers", "sagas") == 1, "processed once")
        await harness.tearDown()
    }

    // Before, events were mandatory too: one nobody had bound a queue for (TransferStalled in the
    // reference app) was returned, held its incoming message and was re-sent forever.
    @Test("an event nobody subscribes to is confirmed and dropped by the broker; its delivery is acked")
    func eventWithoutSubscribers() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(LedgerSaga.queue)
        try await harness.connection.declareExchange(ExchangeDeclaration(name: LedgerSaga.eventsExchange, kind: .topic))
        var registry = HandlerRegistry()
        registry.register(LedgerSaga.self)
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(registry, queues: [LedgerSaga.queue], database: "ledgers", metrics: metrics) {
            $0.outboxRedispatchDelay = .seconds(3600)
        }
        try await harness.send(LedgerSaga.Announce(ledgerId: "l-1"), to: LedgerSaga.queue, messageId: "announce-1")
        try await waitUntil(timeout: .seconds(30), message: "the event marked dispatched and the delivery acked") {
            let dispatched = try await harness.rowCount("ledgers", "outbox", where: "dispatched_at IS NOT NULL")
            let depth = try await harness.depth(LedgerSaga.queue)
            return dispatched == 1 && depth == 0
        }
        #expect(try metrics.expectCounter("saga_messages_deduplicated_total").totalValue == 0, "never came back")
        await harness.stop(endpoint)
        #expect(try await harness.depth(LedgerSaga.queue) == 0)
        await harness.tearDown()
    }
}
