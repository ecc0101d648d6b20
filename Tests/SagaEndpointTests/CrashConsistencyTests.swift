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
@Suite("Crash consistency (fixture process killed with SIGKILL)", .timeLimit(.minutes(6)))
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
        if point == "after-receive" || point == "after-commit" {
            #expect(debits.count == 1, "only a crash between sending and the next transaction may duplicate")
        } else {
            // After the confirms, the dispatch mark waits for the next transaction (`DispatchMarks`), which
            // never came: the restarted endpoint sends the command once more, under the same id.
            #expect(debits.count <= 2)
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

    /// The same under load: a backlog of full batches takes the three-stage path (handlers of the next
    /// batch run while one commits and the one before publishes), and the process dies at the third pass
    /// of a point, with batches on both sides of it in flight. A command may then go out twice (some batch
    /// was between sending and confirming), always under the same id; nothing else may differ from one
    /// processing per request.
    @Test("a crash in the middle of a backlog of full batches, then a restart: one processing per message",
          arguments: ["after-receive", "after-commit", "after-publish", "after-confirm"])
    func crashAmidFullBatches(point: String) async throws {
        let harness = try await EndpointHarness.make()
        let count = 60
        let requests = (0..<count).map { index in
            (id: "req-\(index)", transfer: TransferRequested(transferId: "t-\(index)", fromAccount: "alice",
                                                            toAccount: "bob", amount: 10 + index))
        }
        // The backlog is there before the endpoint starts, so its batches are full from the first one.
        for request in requests {
            try await harness.send(request.transfer, to: "transfers", messageId: request.id)
        }
        let arguments = ["--bank-timeout", "600", "--batch-size", "10"]
        let crashing = try await harness.startedFixture(
            app: "transfer", database: "sagas", environment: ["SAGA_CRASH_POINT": point, "SAGA_CRASH_AFTER": "3"],
            extraArguments: arguments)
        _ = try await harness.exitStatus(crashing, timeout: .seconds(30))
        #expect(crashing.terminatedBySignal, "killed at \(point)")
        #expect(crashing.errorOutput().contains("crash point \(point) reached"))

        let restarted = try await harness.startedFixture(app: "transfer", database: "sagas", extraArguments: arguments)
        try await waitUntil(timeout: .seconds(30), message: "the restarted endpoint did not finish the backlog") {
            try await harness.withStore("sagas") { store in
                try store.connection.query("SELECT count(*) FROM inbox")[0][0].integerValue == Int64(count)
                    && store.outboxBacklog() == 0
            }
        }
        #expect(try await harness.terminate(restarted) == 0)
        #expect(try await harness.depth("transfers") == 0, "every request was acknowledged")
        #expect(try await harness.depth("transfers.error") == 0)

        let debits = try await harness.drain("bank")
        let idsByTransfer = Dictionary(grouping: try debits.map { debit in
            (try debit.decode(DebitAccount.self).transferId, debit.properties.messageId)
        }, by: \.0).mapValues { Set($0.map(\.1)) }
        for (index, request) in requests.enumerated() {
            #expect(idsByTransfer["t-\(index)"] == [outgoingId(request.id, "TransferSaga", "1")], "debits of t-\(index)")
        }
        #expect(idsByTransfer.count == count)

        let (sagas, timeouts, outbox, inbox) = try await harness.withStore("sagas") { store in
            (try store.listSagas(type: TransferSaga.sagaType).map(\.version),
             try store.connection.query("SELECT count(*) FROM timeouts")[0][0].integerValue,
             try store.connection.query("SELECT count(*) FROM outbox")[0][0].integerValue,
             Set(try store.connection.query("SELECT message_id FROM inbox").map { $0[0].textValue ?? "" }))
        }
        #expect(sagas == Array(repeating: 1, count: count), "one processing per request: version 1 each")
        #expect(timeouts == Int64(count))
        #expect(outbox == Int64(count))
        #expect(inbox == Set(requests.map(\.id)))
        for index in [0, count / 2, count - 1] {
            let transfer = try #require(try await harness.state(TransferSaga.self, "t-\(index)", in: "sagas"))
            #expect(transfer.step == .debiting && transfer.attempts == 1)
        }
        await harness.tearDown()
    }
}
