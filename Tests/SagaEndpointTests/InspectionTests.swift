import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// The operator's view of sagas, read from the store of a real run: one saga by type and correlation id
/// (state JSON, version, times, pending timeouts), the sagas of a type, and counts per type.
@Suite("Inspecting sagas through SagaStore", .timeLimit(.minutes(6)))
struct InspectionTests {
    @Test("loadSaga, listSagas, pendingTimeouts and sagaCounts after a real run")
    func inspectAfterARun() async throws {
        let harness = try await EndpointHarness.make()
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                             database: "sagas")
        let before = Date()
        for index in 1...3 {
            try await harness.send(TransferRequested(transferId: "t-\(index)", fromAccount: "a", toAccount: "b", amount: index),
                                   to: "transfers", messageId: "req-\(index)")
            try await waitUntil(timeout: .seconds(30)) { try await harness.rowCount("sagas", "sagas") == index }
        }
        // The bank answers the first transfer's debit: that saga moves on.
        try await harness.send(AccountDebited(transferId: "t-1", account: "a", amount: 1, fee: 25), to: "transfers",
                               messageId: "debited-1", correlationId: "t-1")
        try await waitUntil(timeout: .seconds(30)) {
            try await harness.saga("sagas", type: TransferSaga.sagaType, id: "t-1")?.version == 2
        }
        await harness.stop(endpoint)

        let (one, timeouts, list, counts) = try await harness.withStore("sagas") { store in
            (try store.loadSaga(type: TransferSaga.sagaType, correlationId: "t-1"),
             try store.pendingTimeouts(sagaType: TransferSaga.sagaType, correlationId: "t-1"),
             try store.listSagas(type: TransferSaga.sagaType), try store.sagaCounts())
        }
        let record = try #require(one)
        let state = try MessageCoding.decode(TransferSaga.self, from: record.state, messageType: TransferSaga.sagaType)
        #expect(state.step == .crediting && state.debitFee == 25 && state.amount == 1)
        let json = try #require(try JSONSerialization.jsonObject(with: record.state) as? [String: Any])
        #expect(json["step"] as? String == "crediting", "the state is readable JSON")
        #expect(record.version == 2)
        #expect(record.originatorReplyTo == nil && record.originatorCorrelationId == nil)
        #expect(record.createdAt >= before.addingTimeInterval(-1) && record.createdAt < record.updatedAt)
        #expect(record.updatedAt <= Date())

        // Pending: the debit's timeout (stale now, ignored when it fires) and the credit's, earliest first.
        #expect(timeouts.map(\.messageType) == [BankReplyTimeout.messageType, BankReplyTimeout.messageType])
        #expect(timeouts.map { ($0.dueAt.timeIntervalSince($0.createdAt) * 1000).rounded() } == [60_000, 60_000])
        #expect(timeouts.map(\.createdAt) == [record.createdAt, record.updatedAt])
        #expect(try timeouts.map { try MessageCoding.decode(BankReplyTimeout.self, from: $0.body, messageType: "") }
                == [BankReplyTimeout(step: .debiting, attempt: 1), BankReplyTimeout(step: .crediting, attempt: 1)])

        #expect(list.map(\.correlationId) == ["t-1", "t-2", "t-3"], "oldest first")
        #expect(list.map(\.version) == [2, 1, 1])
        #expect(counts == [TransferSaga.sagaType: 3])
        #expect(try await harness.withStore("sagas") { try $0.listSagas(type: PayoutSaga.sagaType).isEmpty })
        await harness.tearDown()
    }
}
