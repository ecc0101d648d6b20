import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// `markComplete()` deletes the saga's state in the transaction of the message that completed it, and
/// cancels its pending timeouts: they are never delivered.
@Suite("Saga completion", .timeLimit(.minutes(6)))
struct SagaCompletionTests {
    @Test("markComplete deletes the state with the message's transaction; its timeouts never fire")
    func completionCancelsTimeouts() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        try await harness.declareQueue(OrderSaga.outQueue)
        let endpoint = harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders")

        // A control order whose reminder fires, and an order closed before its reminder is due.
        try await harness.send(OrderSaga.Placed(orderId: "o-kept", remindAfterMs: 300), to: OrderSaga.queue,
                               messageId: "place-kept")
        try await harness.send(OrderSaga.Placed(orderId: "o-closed", remindAfterMs: 3000), to: OrderSaga.queue,
                               messageId: "place-closed")
        var due = Date.distantFuture
        try await waitUntil(timeout: .seconds(30)) {
            let pending = try await harness.withStore("orders") {
                try $0.pendingTimeouts(sagaType: OrderSaga.sagaType, correlationId: "o-closed").map(\.dueAt)
            }
            due = pending.first ?? due
            return pending.count == 1
        }
        try await harness.send(OrderSaga.Close(orderId: "o-closed"), to: OrderSaga.queue, messageId: "close-1")
        // Whoever sees the Close in the inbox sees the saga and its timeout gone: one transaction.
        var leftovers = 0
        try await waitUntil(timeout: .seconds(30)) {
            let (closed, remaining) = try await harness.withStore("orders") { store in
                let closed = try store.inboxContains(messageId: "close-1")
                let saga = try store.loadSaga(type: OrderSaga.sagaType, correlationId: "o-closed")
                let timeouts = try store.pendingTimeouts(sagaType: OrderSaga.sagaType, correlationId: "o-closed")
                return (closed, (saga == nil ? 0 : 1) + timeouts.count)
            }
            if closed { leftovers = remaining }
            return closed
        }
        #expect(leftovers == 0)

        // Well past the closed order's due time: only the control order's reminder was sent.
        try await Task.sleep(for: .seconds(max(0, due.timeIntervalSinceNow) + 1))
        let reminders = try await harness.drain(OrderSaga.outQueue)
        #expect(reminders.map(\.properties.messageId) == [outgoingId(outgoingId("place-kept", "Order", "t1"), "Order", "1")])
        #expect(try reminders.map { try $0.decode(OrderSaga.ReminderSent.self).orderId } == ["o-kept"])
        #expect(try await harness.state(OrderSaga.self, "o-kept", in: "orders")?.reminders == 1)
        #expect(try await harness.rowCount("orders", "timeouts") == 0)
        let cancelled = outgoingId("place-closed", "Order", "t1")
        #expect(try await harness.rowCount("orders", "inbox", where: "message_id = '\(cancelled)'") == 0,
                "the cancelled timeout never went through the pipeline")
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
