import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// Housekeeping keeps the store bounded: inbox rows older than the deduplication window and dispatched
/// outbox rows older than the retention go; undispatched outbox rows stay whatever their age.
@Suite("Bounded storage", .timeLimit(.minutes(6)))
struct BoundedStorageTests {
    @Test("old inbox rows and dispatched outbox rows are purged; undispatched ones are kept")
    func housekeepingPurges() async throws {
        let harness = try await EndpointHarness.make()
        // An outbox row the broker never confirmed (kept: it must still go out).
        _ = try await harness.withStore("sagas") { store in
            try store.appendOutbox([OutboxRecord(
                messageId: "seed/TransferSaga/1", incomingMessageId: "seed", position: 0, exchange: "",
                routingKey: "bank", mandatory: true, messageType: DebitAccount.messageType,
                body: try MessageCoding.encode(DebitAccount(transferId: "t-seed", account: "a", amount: 1)),
                createdAt: Date())])
        }
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                             database: "sagas") {
            $0.deduplicationWindow = .seconds(6)
            $0.outboxRetention = .seconds(6)
            $0.housekeepingInterval = .milliseconds(300)
            $0.outboxRedispatchDelay = .seconds(3600)
        }
        let sent = ContinuousClock.now
        for index in 0..<5 {
            try await harness.send(TransferRequested(transferId: "t-\(index)", fromAccount: "a", toAccount: "b", amount: 1),
                                   to: "transfers", messageId: "req-\(index)")
        }
        // All five commands sent and confirmed (so their outbox rows are marked dispatched).
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("bank") == 5 }
        // Within the window nothing is purged yet. (Only checked when the machine was quick enough to get
        // here well inside it: a loaded CI run must not turn this into a race.)
        if ContinuousClock.now - sent < .seconds(4) {
            #expect(try await harness.rowCount("sagas", "inbox") == 5, "kept within the window")
        }

        try await waitUntil(timeout: .seconds(30), message: "inbox and dispatched outbox rows were not purged") {
            let inbox = try await harness.rowCount("sagas", "inbox")
            let outbox = try await harness.rowCount("sagas", "outbox")
            return inbox == 0 && outbox == 1
        }
        let kept = try await harness.withStore("sagas") { try $0.undispatchedOutbox().map(\.messageId) }
        #expect(kept == ["seed/TransferSaga/1"])
        // Saga state and timeouts are not housekeeping's business.
        #expect(try await harness.rowCount("sagas", "sagas") == 5)
        #expect(try await harness.rowCount("sagas", "timeouts") == 5)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
