import MoneyTransfer
import Sagas
import SagaTesting
import Testing

/// The README's first test kit example (Testing sagas with `SagaTesting`), word for word: it must compile
/// and pass against the public API.
@Test func unansweredDebitIsResentThenTheTransferCompletes() async throws {
    let host = SagaTestHost(registry: MoneyTransferApp.registry(bankTimeout: .seconds(10)),
                            endpointAddress: MoneyTransferApp.transfersQueue)

    // Deliver the start message as the endpoint would consume it.
    let started = try await host.deliver(
        TransferRequested(transferId: "t-1", fromAccount: "alice", toAccount: "bob", amount: 10_000))
    #expect(started.outcome(of: TransferSaga.self) == .started)
    let debit = try started.expectSent(DebitAccount.self, to: "bank")   // decoded body
    #expect(debit.amount == 10_000)

    // The bank is silent: advancing the clock fires the saga's timeout, which re-sends
    // the command with the same message id.
    let retry = try await host.advanceTime(by: .seconds(10))
    #expect(retry.sent.map(\.messageId) == started.sent.map(\.messageId))

    // The bank answers the command: to its reply_to queue, with its correlation_id (the transfer id).
    let debited = try await host.deliverReply(
        AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25), to: started.sent[0])
    try debited.expectSent(CreditAccount.self, to: "bank")

    // Delivering the same message id again is a no-op.
    let again = try await host.deliver(debited.message)
    #expect(again.isDuplicate)

    let credited = try await host.deliver(
        AccountCredited(transferId: "t-1", account: "bob", amount: 10_000, fee: 15), correlationId: "t-1")
    let done = try credited.expectPublished(TransferCompleted.self, to: "transfers.events",
                                            routingKey: "TransferCompleted")
    #expect(done.fees == 40)
    #expect(host.isCompleted(TransferSaga.self, correlationId: "t-1"))
    #expect(host.pendingTimeouts.isEmpty)   // a completed saga gets no timeouts
}
