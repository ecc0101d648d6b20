import BrokerTestSupport
import Foundation
import Logging
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// The notice an endpoint logs at start with what the database holds to resume.
@Suite("The resuming-from-the-database record", .timeLimit(.minutes(2)))
struct StoredWorkRecordTests {
    static let message = "resuming from the database"

    // Found by an operations review: after a `kill -9` mid-traffic, nothing in the restarted endpoint's log said
    // that it re-sent unconfirmed outbox rows, fired timeouts late or resumed parked retries.
    @Test("counts what a crash left: an unconfirmed outbox row, an overdue timeout, a parked retry, live sagas")
    func countsWhatACrashLeft() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        try await harness.declareQueue(OrderSaga.outQueue)
        let now = Date()
        let remind = try MessageCoding.encode(OrderSaga.Remind())
        // As a crash between commit and confirm leaves it (CrashPoint.afterCommit): the batch's rows are
        // committed, the outbox row undispatched; a timeout fell due while the process was down.
        try await harness.withStore("orders") { store in
            try store.transaction { store in
                for (index, dueIn) in [-120.0, 3_600].enumerated() {
                    let order = OrderSaga(orderId: "o-\(index)")
                    try store.insertSaga(SagaRecord(sagaType: OrderSaga.sagaType, correlationId: order.orderId,
                                                    state: try JSONEncoder().encode(order), createdAt: now, updatedAt: now))
                    try store.scheduleTimeout(TimeoutRecord(
                        timeoutId: "remind-\(index)", sagaType: OrderSaga.sagaType, correlationId: order.orderId,
                        dueAt: now.addingTimeInterval(dueIn), messageType: OrderSaga.Remind.messageType, body: remind,
                        createdAt: now))
                }
                try store.appendOutbox([
                    OutboxRecord(messageId: "sent", incomingMessageId: "in-1", position: 0, exchange: "",
                                 routingKey: OrderSaga.outQueue, messageType: OrderSaga.Remind.messageType, body: remind,
                                 createdAt: now.addingTimeInterval(-900), dispatchedAt: now.addingTimeInterval(-899)),
                    OutboxRecord(messageId: "unconfirmed", incomingMessageId: "in-1", position: 1, exchange: "",
                                 routingKey: OrderSaga.outQueue, messageType: OrderSaga.Remind.messageType, body: remind,
                                 createdAt: now.addingTimeInterval(-600)),
                ])
                // A failed message parked for a delayed retry: its failure row and its row without a saga.
                try store.recordFailure(messageId: "m-1", error: "boom", at: now, retryAfter: now.addingTimeInterval(3_600))
                try store.scheduleTimeout(TimeoutRecord(
                    timeoutId: "retry:m-1:1", sagaType: "", correlationId: "m-1", dueAt: now.addingTimeInterval(3_600),
                    messageType: OrderSaga.Remind.messageType, body: remind, createdAt: now))
            }
        }
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders",
                                            logger: log.logger(label: "orders"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "endpoint started") {
            log.log.entries.contains { $0.message == "endpoint started" }
        }
        await harness.stop(running)

        let messages = log.log.entries.map(\.message)
        let index = messages.firstIndex(of: Self.message)
        #expect(index != nil && index! < messages.firstIndex(of: "endpoint started")!, "\(log.tail())")
        let record = try #require(log.log.entries.first { $0.message == Self.message })
        #expect(record.level == .notice)
        let metadata = record.metadata
        #expect(metadata["sagas_live"] == "2")
        #expect(metadata["outbox_unconfirmed"] == "1", "the dispatched row is not counted")
        #expect(metadata["timeouts_pending"] == "3")
        #expect(metadata["timeouts_overdue"] == "1")
        #expect(metadata["parked_messages"] == "1")
        #expect(metadata["failing_messages"] == "1")
        #expect(metadata["unfinished_redeliveries"] == "0")
        // Ages from the dates written above: at least those, whatever the time the start took.
        let outboxAge = try #require(metadata["outbox_oldest_unconfirmed_age_s"].flatMap { Int($0) })
        #expect(outboxAge >= 600 && outboxAge < 86_400)
        let overdueBy = try #require(metadata["timeouts_overdue_by_s"].flatMap { Int($0) })
        #expect(overdueBy >= 120 && overdueBy < 86_400)
        await harness.tearDown()
    }

    @Test("a fresh database is logged too, with zeros and no ages")
    func freshDatabaseLogsZeros() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "fresh",
                                            logger: log.logger(label: "fresh"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "endpoint started") {
            log.log.entries.contains { $0.message == "endpoint started" }
        }
        await harness.stop(running)

        let record = try #require(log.log.entries.first { $0.message == Self.message }, "\(log.tail())")
        #expect(record.level == .notice)
        for key in ["sagas_live", "outbox_unconfirmed", "timeouts_pending", "timeouts_overdue", "parked_messages",
                    "failing_messages", "unfinished_redeliveries"] {
            #expect(record.metadata[key] == "0", "\(key)")
        }
        #expect(record.metadata["outbox_oldest_unconfirmed_age_s"] == nil)
        #expect(record.metadata["timeouts_overdue_by_s"] == nil)
        await harness.tearDown()
    }
}
