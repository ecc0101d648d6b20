import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// Timeouts that fell due while no endpoint ran fire at the next start, in batches. (They are counted as
/// possibly tried by a process that died, so a poison timeout cannot crash-loop the endpoint, but that
/// must not make each of them a suspect processed alone.)
@Suite("Overdue timeouts at start", .timeLimit(.minutes(6)))
struct OverdueTimeoutsTests {
    // Failed before the first count of a due row was 1: every overdue row counted 2, a suspect, and went
    // through a transaction and a publish of its own (300 batches).
    @Test("300 timeouts that fell due during downtime fire in batches, not one at a time")
    func overdueTimeoutsAreBatched() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        try await harness.declareQueue(OrderSaga.outQueue)
        let count = 300
        let past = Date().addingTimeInterval(-60)
        let remind = try MessageCoding.encode(OrderSaga.Remind())
        try await harness.withStore("orders") { store in
            try store.transaction { store in
                for index in 0..<count {
                    let order = OrderSaga(orderId: "o-\(index)")
                    try store.insertSaga(SagaRecord(sagaType: OrderSaga.sagaType, correlationId: order.orderId,
                                                    state: try JSONEncoder().encode(order), createdAt: past, updatedAt: past))
                    try store.scheduleTimeout(TimeoutRecord(
                        timeoutId: "remind-\(index)", sagaType: OrderSaga.sagaType, correlationId: order.orderId,
                        dueAt: past, messageType: OrderSaga.Remind.messageType, body: remind, createdAt: past))
                }
            }
        }
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders",
                                             metrics: metrics)
        try await waitUntil(timeout: .seconds(60)) { try await harness.depth(OrderSaga.outQueue) == count }
        await harness.stop(endpoint)

        let batches = try metrics.expectRecorder("saga_batch_size").values
        #expect(batches.count < count / 10, "\(batches.count) batches for \(count) overdue timeouts")
        #expect(try await harness.rowCount("orders", "timeouts") == 0)
        #expect(try await harness.rowCount("orders", "deliveries") == 0, "their counts are cleared once processed")
        await harness.tearDown()
    }
}
