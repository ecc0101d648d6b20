import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// Commands refused by a full queue (`max-length` 0, `reject-publish`) sit in the outbox while their
/// incoming messages are acknowledged; the process is SIGKILLed amid a backlog (at a crash point) and again
/// while the rows wait, then restarted and the queue given room: every command arrives, each under its one
/// id, and each request was processed once.
@Suite("Refused outbox rows across crashes", .timeLimit(.minutes(6)))
struct RefusedOutboxCrashTests {
    @Test("killed while commands sit refused in the outbox: each goes out under its id once the queue has room",
          arguments: ["after-publish", "after-confirm"])
    func refusedAcrossCrashes(point: String) async throws {
        let harness = try await EndpointHarness.make()
        let vhost = harness.vhost
        try await harness.refusePublishes(to: "bank", policy: "bank-full")
        let count = 60
        let requests = (0..<count).map { index in
            (id: "req-\(index)", transfer: TransferRequested(transferId: "t-\(index)", fromAccount: "alice",
                                                            toAccount: "bob", amount: 10 + index))
        }
        for request in requests {
            try await harness.send(request.transfer, to: "transfers", messageId: request.id)
        }
        let arguments = ["--bank-timeout", "600", "--batch-size", "10"]
        let crashing = try await harness.startedFixture(
            app: "transfer", database: "sagas", environment: ["SAGA_CRASH_POINT": point, "SAGA_CRASH_AFTER": "3"],
            extraArguments: arguments)
        _ = try await harness.exitStatus(crashing, timeout: .seconds(30))
        #expect(crashing.terminatedBySignal, "killed at \(point)")

        // Restarted with the queue still full: every request is acknowledged, every command waits refused.
        let second = try await harness.startedFixture(app: "transfer", database: "sagas", extraArguments: arguments)
        try await waitUntil(timeout: .seconds(30), message: "every request acknowledged, its command in the outbox") {
            let backlog = try await harness.withStore("sagas") { try $0.outboxBacklog() }
            return try await harness.depth("transfers") == 0 && backlog == count
        }
        #expect(try await harness.depth("bank") == 0)
        second.kill(signal: 9)
        _ = try await harness.exitStatus(second, timeout: .seconds(10))

        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "bank-full"]) }
        let third = try await harness.startedFixture(app: "transfer", database: "sagas", extraArguments: arguments)
        try await waitUntil(timeout: .seconds(60), message: "the outbox dispatched") {
            try await harness.withStore("sagas") { try $0.outboxBacklog() } == 0
        }
        #expect(try await harness.terminate(third) == 0)
        #expect(try await harness.depth("transfers.error") == 0)
        let debits = try await harness.drain("bank")
        let idsByTransfer = Dictionary(grouping: try debits.map { debit in
            (try debit.decode(DebitAccount.self).transferId, debit.properties.messageId)
        }, by: \.0).mapValues { $0.map(\.1) }
        for (index, request) in requests.enumerated() {
            #expect(idsByTransfer["t-\(index)"] == [outgoingId(request.id, "TransferSaga", "1")], "debits of t-\(index)")
        }
        let (versions, inbox) = try await harness.withStore("sagas") { store in
            (try store.listSagas(type: TransferSaga.sagaType).map(\.version),
             Set(try store.connection.query("SELECT message_id FROM inbox").map { $0[0].textValue ?? "" }))
        }
        #expect(versions == Array(repeating: 1, count: count), "one processing per request")
        #expect(inbox == Set(requests.map(\.id)))
        await harness.tearDown()
    }
}
