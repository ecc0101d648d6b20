import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// Rows of the timeouts table that nothing in this endpoint handles any more: a saga timeout of a saga
/// type that is no longer registered (or was renamed), a parked retry of a message type whose handler was
/// removed in a deploy. As a delivery of such a type is, they go to the error queue (`NoHandler`), where
/// an operator sees them and can replay them once the handler is back; they are not acknowledged as if
/// processed, which lost them without a trace.
@Suite("Due rows nobody handles", .timeLimit(.minutes(3)))
struct UnhandledDueRowTests {
    // Failed before: all three were "processed" (no saga ran, inbox row written, row deleted, counted as
    // fired timeouts) and nothing reached the error queue.
    @Test("a timeout of a saga no longer registered, or of a renamed one, and a parked retry of an unhandled type go to the error queue")
    func unhandledDueRowsAreErrorQueued() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        try await harness.declareQueue(OrderSaga.outQueue)
        let past = Date().addingTimeInterval(-5)
        try await harness.withStore("orders") { store in
            try store.transaction { store in
                // A saga type this endpoint no longer registers, with its own timeout type.
                try store.insertSaga(SagaRecord(sagaType: "Retired", correlationId: "r-1", state: Data("{}".utf8),
                                                createdAt: past, updatedAt: past))
                try store.scheduleTimeout(TimeoutRecord(
                    timeoutId: "retired-timeout", sagaType: "Retired", correlationId: "r-1", dueAt: past,
                    messageType: "test.RetiredTimeout", body: Data("{}".utf8), createdAt: past))
                // A saga renamed since: its timeout type is still handled, but by another saga type.
                try store.insertSaga(SagaRecord(sagaType: "OldOrder", correlationId: "o-1", state: Data("{}".utf8),
                                                createdAt: past, updatedAt: past))
                try store.scheduleTimeout(TimeoutRecord(
                    timeoutId: "renamed-timeout", sagaType: "OldOrder", correlationId: "o-1", dueAt: past,
                    messageType: OrderSaga.Remind.messageType, body: Data("{}".utf8), createdAt: past))
                // Still handled: a timeout of one of the saga's ordinary message types (`requestTimeout`
                // takes any message), which its `handles` route receives.
                try store.insertSaga(SagaRecord(sagaType: OrderSaga.sagaType, correlationId: "o-2",
                                                state: try MessageCoding.encode(OrderSaga(orderId: "o-2")),
                                                createdAt: past, updatedAt: past))
                try store.scheduleTimeout(TimeoutRecord(
                    timeoutId: "paid-timeout", sagaType: OrderSaga.sagaType, correlationId: "o-2", dueAt: past,
                    messageType: OrderSaga.Paid.messageType,
                    body: try MessageCoding.encode(OrderSaga.Paid(orderId: "o-2")), createdAt: past))
                // A delayed retry of a message whose handler is gone (as `MessageTranslation.deferral` parks it).
                try store.scheduleTimeout(TimeoutRecord(
                    timeoutId: "retry:gone-1:4", sagaType: "", correlationId: "gone-1", dueAt: past,
                    messageType: "test.Gone", body: Data("{}".utf8),
                    headers: ["x-saga-original-message-id": "gone-1", "x-saga-original-queue": OrderSaga.queue,
                              "x-saga-retry-attempt": "4"],
                    createdAt: past))
            }
        }
        let endpoint = harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders")
        let copies = try await harness.errorMessages(of: OrderSaga.queue, count: 3, timeout: .seconds(10))
        #expect(Set(copies.compactMap(\.properties.messageId)) == ["retired-timeout", "renamed-timeout", "gone-1"])
        for copy in copies {
            #expect(copy.header("x-error-type") == "NoHandler", "\(copy.properties.messageId ?? "?")")
        }
        let renamed = copies.first { $0.properties.messageId == "renamed-timeout" }
        #expect(renamed?.header("x-saga-timeout-saga-type") == "OldOrder")
        #expect(renamed?.header("x-saga-timeout-correlation-id") == "o-1")
        try await waitUntil(timeout: .seconds(10)) { try await harness.rowCount("orders", "timeouts") == 0 }
        #expect(try await harness.rowCount("orders", "inbox") == 1, "none of them was processed, but the handled one")
        #expect(try await harness.state(OrderSaga.self, "o-2", in: "orders")?.paid == true)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
