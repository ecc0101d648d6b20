import Foundation
import Sagas
import SagaTesting
import Testing

/// The README's way to ignore a timeout that a later step made stale: timeouts are not withdrawn before
/// completion, so the saga keeps the id of the one that counts and compares it in the handler.
@Suite("A stale timeout is told apart by its id")
struct StaleTimeoutTests {
    struct Opened: Message { static let messageType = "Lease.Opened"; var leaseId: String }
    struct Extended: Message { static let messageType = "Lease.Extended"; var leaseId: String }
    struct Expiry: Message { static let messageType = "Lease.Expiry" }

    struct Lease: Saga {
        static let sagaType = "Lease"
        var expiryId: String
        var expired = false

        static func define(_ saga: inout SagaDefinition<Lease>) {
            saga.startedBy(Opened.self, correlatedBy: \.leaseId) { _, context in
                Lease(expiryId: try context.requestTimeout(after: .seconds(10), Expiry()))
            }
            saga.handles(Extended.self, correlatedBy: \.leaseId) { lease, _, context in
                lease.expiryId = try context.requestTimeout(after: .seconds(20), Expiry())
            }
            saga.handlesTimeout(Expiry.self) { lease, _, context in
                guard context.incoming.messageId == lease.expiryId else { return }   // a stale one
                lease.expired = true
            }
        }
    }

    @Test func onlyTheLatestTimeoutCounts() async throws {
        let host = SagaTestHost(Lease.self)
        try await host.deliver(Opened(leaseId: "l-1"))
        try await host.advanceTime(by: .seconds(5))
        try await host.deliver(Extended(leaseId: "l-1"))
        let first = try await host.advanceTime(by: .seconds(7))      // the first timeout, now stale
        #expect(first.deliveries.count == 1)
        #expect(host.state(of: Lease.self, correlationId: "l-1")?.expired == false)
        try await host.advanceTime(by: .seconds(14))                  // the one that counts
        #expect(host.state(of: Lease.self, correlationId: "l-1")?.expired == true)
    }
}
