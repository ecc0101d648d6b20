import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import Sagas
import Testing

/// A start message creates its saga; a message for no live saga follows its not-found policy.
@Suite("Saga creation and not-found policies", .timeLimit(.minutes(6)))
struct NotFoundPolicyTests {
    @Test("a start message creates the saga; a message for no saga is discarded by default and counted")
    func startAndDiscard() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders",
                                             metrics: metrics)
        try await harness.send(OrderSaga.Placed(orderId: "o-1", remindAfterMs: nil), to: OrderSaga.queue)
        try await harness.send(OrderSaga.Shipped(orderId: "o-none"), to: OrderSaga.queue, messageId: "ship-none")
        try await harness.send(OrderSaga.Shipped(orderId: "o-1"), to: OrderSaga.queue)

        try await waitUntil(timeout: .seconds(30)) {
            try await harness.rowCount("orders", "inbox") == 3
        }
        let order = try #require(try await harness.saga("orders", type: OrderSaga.sagaType, id: "o-1"))
        #expect(order.version == 2, "created by Placed, updated by Shipped")
        #expect(try await harness.saga("orders", type: OrderSaga.sagaType, id: "o-none") == nil)
        #expect(try metrics.expectCounter("saga_sagas_not_found_total").totalValue == 1)
        #expect(try metrics.expectCounter("saga_sagas_started_total").totalValue == 1)
        #expect(try await harness.rowCount("orders", "inbox", where: "message_id = 'ship-none'") == 1,
                "a discarded message is processed: a redelivery of it is a duplicate")
        #expect(try await harness.depth(OrderSaga.queue + ".error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("whenNotFound: a message for no saga runs the handler instead, once, committed with the inbox")
    func whenNotFoundHandler() async throws {
        let harness = try await EndpointHarness.make()
        let replies = "orders.replies"
        try await harness.declareQueue(OrderSaga.queue)
        try await harness.declareQueue(replies)
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders",
                                             metrics: metrics)
        try await harness.send(OrderSaga.Placed(orderId: "o-1", remindAfterMs: nil), to: OrderSaga.queue)
        // The same message id twice: the second copy is a duplicate, so one reply only.
        for _ in 0..<2 {
            try await harness.send(OrderSaga.StatusRequested(orderId: "o-none"), to: OrderSaga.queue,
                                   messageId: "status-none", correlationId: "ask-none", replyTo: replies)
        }
        try await harness.send(OrderSaga.StatusRequested(orderId: "o-1"), to: OrderSaga.queue,
                               messageId: "status-1", correlationId: "ask-1", replyTo: replies)
        try await waitUntil(timeout: .seconds(30)) {
            let processed = try await harness.rowCount("orders", "inbox") == 3
            let queueEmpty = try await harness.depth(OrderSaga.queue) == 0
            return processed && queueEmpty
                && (try? metrics.expectCounter("saga_messages_deduplicated_total").totalValue) == 1
        }

        let received = try await harness.receive(from: replies, count: 2)
        #expect(received.count == 2)
        #expect(try await harness.depth(replies) == 0, "one reply per message id")
        let answers = try received.map { try MessageCoding.decode(OrderSaga.Status.self, from: $0.message.body, messageType: OrderSaga.Status.messageType) }
        let unknown = try #require(received.first { $0.message.properties.correlationId == "ask-none" })
        #expect(unknown.message.properties.messageId == outgoingId("status-none", "Order#not-found", "1"))
        #expect(answers.contains { $0.orderId == "o-none" && !$0.known })
        #expect(answers.contains { $0.orderId == "o-1" && $0.known })
        #expect(try await harness.saga("orders", type: OrderSaga.sagaType, id: "o-none") == nil, "no instance made")
        #expect(try metrics.expectCounter("saga_sagas_not_found_total").totalValue == 1)
        #expect(try await harness.depth(OrderSaga.queue + ".error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("policy .errorQueue: a message for no saga goes to the error queue with the reason")
    func errorQueuePolicy() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        let endpoint = harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders")
        try await harness.send(OrderSaga.Cancelled(orderId: "o-missing"), to: OrderSaga.queue, messageId: "cancel-1")
        let copy = try #require(try await harness.errorMessages(of: OrderSaga.queue, count: 1).first)
        #expect(copy.properties.messageId == "cancel-1")
        #expect(copy.header("x-error-type") == "SagaNotFound")
        #expect(copy.header("x-error-reason")?.contains("Order/o-missing") == true)
        #expect(try await harness.rowCount("orders", "sagas") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("policy .retryLater: a reply that arrives before its start message is processed once the saga exists")
    func earlyReplyIsProcessedLater() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        let endpoint = harness.startEndpoint(
            OrderSaga.registry(earlyPayment: .retryLater(attempts: 20, delay: .milliseconds(300))),
            queues: [OrderSaga.queue], database: "orders")
        try await harness.send(OrderSaga.Paid(orderId: "o-early"), to: OrderSaga.queue, messageId: "paid-early")
        // Parked durably, and retried more than once while the order does not exist (the waits are counted on
        // the parked row, not as handler failures).
        try await waitUntil(timeout: .seconds(30)) {
            try await harness.rowCount("orders", "timeouts", where: "timeout_id LIKE 'retry:paid-early:2:%'") == 1
        }
        try await harness.send(OrderSaga.Placed(orderId: "o-early", remindAfterMs: nil), to: OrderSaga.queue)
        try await waitUntil(timeout: .seconds(30)) {
            try await harness.state(OrderSaga.self, "o-early", in: "orders")?.paid == true
        }
        #expect(try await harness.rowCount("orders", "timeouts") == 0)
        #expect(try await harness.rowCount("orders", "failures") == 0)
        #expect(try await harness.depth(OrderSaga.queue + ".error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    // Also failed before: the two retries were not counted in saga_messages_retried_total (a retry later
    // is a delayed retry), so the error-queued message looked as if it had never been retried.
    @Test("policy .retryLater: a reply whose saga never starts goes to the error queue after its attempts")
    func retryLaterGivesUp() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(
            OrderSaga.registry(earlyPayment: .retryLater(attempts: 2, delay: .milliseconds(200))),
            queues: [OrderSaga.queue], database: "orders", metrics: metrics)
        try await harness.send(OrderSaga.Paid(orderId: "o-never"), to: OrderSaga.queue, messageId: "paid-never")
        let copy = try #require(try await harness.errorMessages(of: OrderSaga.queue, count: 1, timeout: .seconds(30)).first)
        #expect(copy.properties.messageId == "paid-never")
        #expect(copy.properties.type == OrderSaga.Paid.messageType)
        #expect(copy.header("x-error-type") == "SagaNotFound")
        #expect(copy.intHeader("x-attempts") == 3)
        #expect(copy.header("x-original-queue") == OrderSaga.queue)
        #expect(try copy.decode(OrderSaga.Paid.self).orderId == "o-never")
        try await waitUntil(timeout: .seconds(20)) { try await harness.rowCount("orders", "timeouts") == 0 }
        #expect(try await harness.rowCount("orders", "failures") == 0)
        #expect(((try? metrics.expectCounter("saga_messages_retried_total"))?.totalValue ?? 0) == 2)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
