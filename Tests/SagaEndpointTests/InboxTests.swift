import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import MoneyTransfer
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// The inbox: a message id is processed once. A copy changes nothing and emits nothing new, except that
/// outgoing messages of the first processing that were never confirmed are published again (same ids).
@Suite("Inbox deduplication", .timeLimit(.minutes(6)))
struct InboxTests {
    @Test("a message id seen before changes nothing and emits nothing new, whatever its body")
    func seenIdChangesNothing() async throws {
        let harness = try await EndpointHarness.make()
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                             database: "sagas", metrics: metrics)
        try await harness.send(TransferRequested(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 10),
                               to: "transfers", messageId: "req-1")
        try await waitUntil(timeout: .seconds(30)) { try await harness.rowCount("sagas", "inbox") == 1 }
        // The same id again: once identical, once with another transfer in its body.
        try await harness.send(TransferRequested(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 10),
                               to: "transfers", messageId: "req-1")
        try await harness.send(TransferRequested(transferId: "t-2", fromAccount: "c", toAccount: "d", amount: 99),
                               to: "transfers", messageId: "req-1")
        try await harness.send(TransferRequested(transferId: "t-3", fromAccount: "e", toAccount: "f", amount: 1),
                               to: "transfers", messageId: "req-3")
        try await waitUntil(timeout: .seconds(30)) { try await harness.rowCount("sagas", "inbox") == 2 }

        let debits = try await harness.drain("bank")
        #expect(debits.map(\.properties.messageId)
                == [outgoingId("req-1", "TransferSaga", "1"), outgoingId("req-3", "TransferSaga", "1")])
        let sagas = try await harness.withStore("sagas") { try $0.listSagas().map { "\($0.correlationId)@\($0.version)" } }
        #expect(sagas == ["t-1@1", "t-3@1"])
        #expect(try await harness.rowCount("sagas", "outbox") == 2)
        #expect(try await harness.rowCount("sagas", "timeouts") == 2)
        #expect(try metrics.expectCounter("saga_messages_deduplicated_total").totalValue == 2)
        await harness.stop(endpoint)
        #expect(try await harness.depth("transfers") == 0, "the copies were acknowledged")
        await harness.tearDown()
    }

    @Test("a copy of a message whose outgoing messages were never confirmed publishes them again, same ids, then is acked")
    func unconfirmedOutgoingAreRepublished() async throws {
        let harness = try await EndpointHarness.make()
        // The first processing of req-9 committed (inbox + outbox) but crashed before the confirm.
        let debit = DebitAccount(transferId: "t-9", account: "alice", amount: 70)
        let body = try MessageCoding.encode(debit)
        try await harness.withStore("sagas") { store in
            try store.transaction { store in
                try store.recordInbox(messageId: "req-9", queue: "transfers", at: Date())
                try store.appendOutbox([OutboxRecord(
                    messageId: outgoingId("req-9", "TransferSaga", "1"), incomingMessageId: "req-9", position: 0, exchange: "",
                    routingKey: "bank", mandatory: true, messageType: DebitAccount.messageType, correlationId: "t-9",
                    replyTo: "transfers", body: body, createdAt: Date())])
            }
        }
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                             database: "sagas") { $0.outboxRedispatchDelay = .seconds(3600) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await harness.depth("bank") == 0, "nothing is re-sent before the copy arrives")

        try await harness.send(TransferRequested(transferId: "t-9", fromAccount: "alice", toAccount: "bob", amount: 70),
                               to: "transfers", messageId: "req-9")
        // (A loaded run may take longer than drain's quiet second to get to the copy.)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("bank") >= 1 }
        let debits = try await harness.drain("bank", quietFor: .seconds(1))
        #expect(debits.map(\.properties.messageId) == [outgoingId("req-9", "TransferSaga", "1")])
        #expect(debits.first?.properties.correlationId == "t-9")
        #expect(debits.first?.properties.replyTo == "transfers")
        #expect(try debits.first?.decode(DebitAccount.self) == debit)
        #expect(try await harness.rowCount("sagas", "sagas") == 0, "the handler did not run again")
        #expect(try await harness.rowCount("sagas", "outbox", where: "dispatched_at IS NULL") == 0)
        await harness.stop(endpoint)
        #expect(try await harness.depth("transfers") == 0, "the copy was acknowledged")
        await harness.tearDown()
    }

    @Test("a message without message_id never reaches a handler: error queue with the reason")
    func missingMessageIdNeverReachesAHandler() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("pings")
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in calls.increment() }
        let endpoint = harness.startEndpoint(registry, queues: ["pings"], database: "pings")
        let body = try MessageCoding.encode(Explode(note: "anonymous"))
        try await harness.sendRaw(body, properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, type: Explode.messageType), to: "pings")
        let copy = try #require(try await harness.errorMessages(of: "pings", count: 1).first)
        #expect(copy.properties.messageId == nil)
        #expect(copy.header("x-error-type") == "MissingMessageId")
        #expect(copy.header("x-error-reason")?.contains("message_id") == true)
        #expect(calls.count == 0)

        try await harness.send(Explode(note: "named"), to: "pings", messageId: "ping-2")
        try await waitUntil(timeout: .seconds(30)) { calls.count == 1 }
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    // Failed before: every copy in the batch called the handler (the inbox knows a message only once its
    // batch commits).
    @Test("copies of a message close together call its stateless handler once, and emit once")
    func statelessHandlerOnceForCopiesInFlight() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("pings")
        try await harness.declareQueue("pongs")
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { ping, context in
            calls.increment()
            try context.send(Explode(note: "pong for \(ping.note)"), to: "pongs")
        }
        // All copies wait in the queue before the endpoint starts, so they come in one batch (or, at the
        // latest, in the next one while the first commits).
        for _ in 0..<3 { try await harness.send(Explode(note: "ping"), to: "pings", messageId: "ping-1") }
        try await harness.send(Explode(note: "other"), to: "pings", messageId: "ping-2")
        let endpoint = harness.startEndpoint(registry, queues: ["pings"], database: "pings")
        try await waitUntil(timeout: .seconds(30)) { try await harness.rowCount("pings", "inbox") == 2 }
        let pongs = try await harness.drain("pongs")
        #expect(pongs.count == 2)
        #expect(calls.count == 2)
        await harness.stop(endpoint)
        #expect(try await harness.depth("pings") == 0, "every copy was acknowledged")
        await harness.tearDown()
    }

    // Failed before: housekeeping re-sent the row but counted nothing, so saga_messages_published_total
    // missed exactly the recovery an operator watches for.
    @Test("an outbox row a crash left unconfirmed is re-sent by housekeeping and counted as published")
    func housekeepingResendsAreCounted() async throws {
        let harness = try await EndpointHarness.make()
        let body = try MessageCoding.encode(DebitAccount(transferId: "t-7", account: "alice", amount: 70))
        try await harness.withStore("sagas") { store in
            try store.transaction { store in
                try store.recordInbox(messageId: "req-7", queue: "transfers", at: Date())
                try store.appendOutbox([OutboxRecord(
                    messageId: outgoingId("req-7", "TransferSaga", "1"), incomingMessageId: "req-7", position: 0,
                    exchange: "", routingKey: "bank", mandatory: true, messageType: DebitAccount.messageType,
                    correlationId: "t-7", replyTo: "transfers", body: body, createdAt: Date().addingTimeInterval(-3600))])
            }
        }
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                             database: "sagas", metrics: metrics)
        let resent = try await harness.receive(from: "bank", count: 1)
        #expect(resent.map(\.properties.messageId) == [outgoingId("req-7", "TransferSaga", "1")])
        try await waitUntil(timeout: .seconds(30)) {
            ((try? metrics.expectCounter("saga_messages_published_total").totalValue) ?? 0) == 1
        }
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
