import Foundation
import Sagas
import SagaTesting
import Testing

@Suite("SagaTestHost refuses what the endpoint refuses")
struct SagaTestHostRefusalTests {
    /// Failed before: the second message with an empty id was taken for a duplicate of the first.
    @Test("a message with an empty id is refused, not deduplicated against the next one")
    func emptyMessageId() async throws {
        let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")
        await #expect(throws: SagaTestHostError.missingMessageId(type: "OrderPlaced")) {
            try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "")
        }
        #expect(host.liveSagaCount == 0)
        let next = try await host.deliver(OrderPlaced(orderId: "o-2", amount: 5), messageId: "m-2")
        #expect(next.outcome(of: OrderSaga.self) == .started)
    }

    /// Failed before: consumed as handled, with no saga invocation and an inbox row.
    @Test("a saga's timeout type that did not come from its timeout has no handler")
    func timeoutTypeFromOutside() async throws {
        let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        await #expect(throws: SagaError.noHandler(type: PaymentReminder.messageType)) {
            try await host.deliver(PaymentReminder(attempt: 1), messageId: "spoofed", correlationId: "o-1")
        }
        // The saga's own timeout still reaches it.
        let fired = try await host.advanceTime(by: .seconds(30))
        #expect(!fired.deliveries.isEmpty)
    }
}
