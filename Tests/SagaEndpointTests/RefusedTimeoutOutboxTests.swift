import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// A saga timeout whose handler sends a command to a full queue (`reject-publish`) has no delivery to
/// acknowledge: it fires once (the saga counts one reminder), its command waits in the outbox, and goes
/// out under its id once the queue has room.
@Suite("A timeout whose command a full queue refuses", .timeLimit(.minutes(3)))
struct RefusedTimeoutOutboxTests {
    @Test("fires once; its command is sent once the queue has room")
    func timeoutCommandRefused() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        try await harness.connection.declareQueue(QueueDeclaration(name: OrderSaga.outQueue))
        let vhost = harness.vhost
        try await harness.refusePublishes(to: "orders.out", policy: "out-full")
        let endpoint = harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders") {
            $0.outboxRedispatchDelay = .seconds(1)
        }
        let orders = 20
        for index in 0..<orders {
            try await harness.send(OrderSaga.Placed(orderId: "o-\(index)", remindAfterMs: 200), to: OrderSaga.queue,
                                   messageId: "placed-\(index)")
        }
        try await waitUntil(timeout: .seconds(30), message: "every timeout fired, its command in the outbox") {
            let pending = try await harness.rowCount("orders", "timeouts")
            let waiting = try await harness.rowCount("orders", "outbox", where: "dispatched_at IS NULL")
            return pending == 0 && waiting == orders
        }
        // A few re-send rounds while the queue stays full: the timeouts do not fire again.
        try await Task.sleep(for: .seconds(3))
        for index in [0, orders - 1] {
            #expect(try await harness.state(OrderSaga.self, "o-\(index)", in: "orders")?.reminders == 1)
        }
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "out-full"]) }
        try await waitUntil(timeout: .seconds(30), message: "the outbox dispatched") {
            try await harness.rowCount("orders", "outbox", where: "dispatched_at IS NULL") == 0
        }
        await harness.stop(endpoint)
        let sent = try await harness.drain(OrderSaga.outQueue)
        #expect(sent.count == orders, "one reminder per order")
        #expect(Set(sent.compactMap(\.properties.messageId)).count == orders)
        for index in 0..<orders {
            #expect(try await harness.state(OrderSaga.self, "o-\(index)", in: "orders")?.reminders == 1)
        }
        await harness.tearDown()
    }
}
