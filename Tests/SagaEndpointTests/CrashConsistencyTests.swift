import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// The endpoint process is SIGKILLed at each point of the pipeline, then restarted: every case ends with
/// the effects of exactly one processing (same saga state, one pending timeout, the command delivered at
/// least once and every copy under the same message id).
@Suite("Crash consistency (fixture process killed with SIGKILL)", .timeLimit(.minutes(2)))
struct CrashConsistencyTests {
    @Test("a crash at this point, then a restart: the effects of exactly one processing",
          arguments: ["after-receive", "after-commit", "after-publish", "after-confirm"])
    func crashThenRestart(point: String) async throws {
        let harness = try await EndpointHarness.make()
        // A long bank timeout: no re-send may blur "one processing".
        let arguments = ["--bank-timeout", "600"]
        let crashing = try await harness.startedFixture(
            app: "transfer", database: "sagas", environment: ["SAGA_CRASH_POINT": point], extraArguments: arguments)
        try await harness.send(TransferRequested(transferId: "t-crash", fromAccount: "alice", toAccount: "bob", amount: 42),
                               to: "transfers", messageId: "req-crash")
        _ = try await harness.exitStatus(crashing, timeout: .seconds(20))
        #expect(crashing.terminatedBySignal, "killed at \(point)")
        #expect(crashing.errorOutput().contains("crash point \(point) reached"))

        let restarted = try await harness.startedFixture(app: "transfer", database: "sagas", extraArguments: arguments)
        try await waitUntil(timeout: .seconds(20), message: "the restarted endpoint did not finish the message") {
            try await harness.withStore("sagas") { store in
                try store.inboxContains(messageId: "req-crash") && store.outboxBacklog() == 0
            }
        }
        #expect(try await harness.terminate(restarted) == 0)
        #expect(try await harness.depth("transfers") == 0, "the request was acknowledged")

        // The command: at least once, and every copy is the same message.
        let debits = try await harness.drain("bank")
        #expect(!debits.isEmpty)
        #expect(Set(debits.map(\.properties.messageId)) == [outgoingId("req-crash", "TransferSaga", "1")])
        #expect(Set(debits.map(\.message.body)).count == 1)
        if point == "after-receive" || point == "after-confirm" || point == "after-commit" {
            #expect(debits.count == 1, "only a crash between sending and confirming may duplicate")
        }

        // The state of one processing: the transfer waits for the bank's reply to its first debit.
        let transfer = try #require(try await harness.state(TransferSaga.self, "t-crash", in: "sagas"))
        #expect(transfer.step == .debiting)
        #expect(transfer.attempts == 1)
        #expect(transfer.commandMessageId == outgoingId("req-crash", "TransferSaga", "1"))
        let (version, timeouts, outbox, inbox) = try await harness.withStore("sagas") { store in
            (try store.loadSaga(type: TransferSaga.sagaType, correlationId: "t-crash")?.version,
             try store.pendingTimeouts(sagaType: TransferSaga.sagaType, correlationId: "t-crash").map(\.timeoutId),
             try store.outbox(forIncoming: "req-crash").map(\.messageId),
             try store.connection.query("SELECT message_id FROM inbox").map { $0[0].textValue ?? "" })
        }
        #expect(version == 1)
        #expect(timeouts == [outgoingId("req-crash", "TransferSaga", "t2")])
        #expect(outbox == [outgoingId("req-crash", "TransferSaga", "1")])
        #expect(inbox == ["req-crash"])
        #expect(try await harness.depth("transfers.error") == 0)
        await harness.tearDown()
    }
}
