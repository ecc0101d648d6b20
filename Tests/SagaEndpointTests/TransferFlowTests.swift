import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

@Suite("Reference app on the real broker", .timeLimit(.minutes(6)))
struct TransferFlowTests {
    @Test("a transfer runs through the saga and the bank to TransferCompleted, and leaves no state")
    func transferCompletes() async throws {
        let harness = try await EndpointHarness.make()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers", "payouts"], database: "sagas")
        let bank = harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        try await harness.send(TransferRequested(transferId: "t-1", fromAccount: "alice", toAccount: "bob", amount: 1000),
                               to: "transfers")
        let events = try await harness.receive(from: harness.eventsQueue, count: 1)
        let completed = try #require(events.first).decode(TransferCompleted.self)
        #expect(completed.transferId == "t-1")
        #expect(completed.fees == 25 + 15)
        sagas.cancel(); bank.cancel()
        _ = await (sagas.result, bank.result)
        await harness.tearDown()
    }

    @Test("a duplicated request (same message id) changes nothing: one debit, one terminal event")
    func duplicateRequestIsDeduplicated() async throws {
        let harness = try await EndpointHarness.make()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers", "payouts"], database: "sagas")
        let request = TransferRequested(transferId: "t-dup", fromAccount: "alice", toAccount: "bob", amount: 500)
        for _ in 0..<3 { try await harness.send(request, to: "transfers", messageId: "request-1") }
        // The first debit may take a while on a loaded machine; the copies are handled right after it.
        let debits = try await harness.receive(from: "bank", count: 1, timeout: .seconds(30))
        let extra = try await harness.receive(from: "bank", count: 1, timeout: .seconds(3))
        #expect(debits.count == 1 && extra.isEmpty)
        #expect(debits.first?.properties.type == "DebitAccount")
        #expect(debits.first?.properties.replyTo == "transfers")
        #expect(debits.first?.properties.correlationId == "t-dup")
        sagas.cancel()
        _ = await sagas.result
        await harness.tearDown()
    }
}
