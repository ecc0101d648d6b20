import Foundation
import MoneyTransfer
import Sagas
import SagaTesting
import Testing

@Suite struct TransferSagaTests {
    let host = makeAppHost()
    let request = TransferRequested(transferId: "t-1", fromAccount: "alice", toAccount: "bob", amount: 10_000)

    @Test func successfulTransfer() async throws {
        let started = try await host.deliver(request, messageId: "req-1", queue: App.transfersQueue)
        #expect(started.outcome(of: TransferSaga.self) == .started)
        let debit = try started.expectSent(DebitAccount.self, to: App.bankQueue)
        #expect(debit == DebitAccount(transferId: "t-1", account: "alice", amount: 10_000))
        let command = try #require(started.sent.first)
        #expect(command.replyTo == "transfers")
        #expect(command.correlationId == "t-1")
        #expect(command.type == "DebitAccount")

        // The bank answers the command it got (correlation id and queue from the command).
        let debited = try await host.deliverReply(AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25), to: command)
        #expect(debited.message.correlationId == "t-1" && debited.message.queue == App.transfersQueue)
        let credit = try debited.expectSent(CreditAccount.self, to: App.bankQueue)
        #expect(credit == CreditAccount(transferId: "t-1", account: "bob", amount: 10_000))
        #expect(debited.sent.first?.correlationId == "t-1" && debited.sent.first?.replyTo == "transfers")
        #expect(host.transfer("t-1")?.step == .crediting)

        let credited = try await host.deliverReply(AccountCredited(transferId: "t-1", account: "bob", amount: 10_000, fee: 15),
                                                   to: try #require(debited.sent.first))
        #expect(credited.outcome(of: TransferSaga.self) == .completed)
        let completed = try credited.expectPublished(TransferCompleted.self, to: "transfers.events", routingKey: "TransferCompleted")
        #expect(completed == TransferCompleted(transferId: "t-1", amount: 10_000, fees: 40))
        #expect(try !jsonKeys(completed).contains("batchId"), "batchId is omitted when absent")
        #expect(host.isCompleted(TransferSaga.self, correlationId: "t-1"))
        #expect(host.liveSagaCount == 0 && host.pendingTimeouts.isEmpty)
    }

    @Test func debitRejected() async throws {
        try await host.deliver(request)
        let rejected = try await host.bankReplies(DebitRejected(transferId: "t-1", account: "alice", reason: "InsufficientFunds"), transferId: "t-1")
        let failed = try rejected.expectPublished(TransferFailed.self, to: App.transferEventsExchange, routingKey: "TransferFailed")
        #expect(failed == TransferFailed(transferId: "t-1", reason: "InsufficientFunds", refunded: 0, feesLost: 0))
        #expect(rejected.sent.isEmpty)
        #expect(host.isCompleted(TransferSaga.self, correlationId: "t-1"))
    }

    @Test func creditRejectedIsRefundedWithFeesAccounted() async throws {
        try await host.deliver(request)
        try await host.bankReplies(AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25), transferId: "t-1")
        let rejected = try await host.bankReplies(CreditRejected(transferId: "t-1", account: "bob", reason: "AccountClosed"), transferId: "t-1")
        let refund = try rejected.expectSent(RefundAccount.self, to: App.bankQueue)
        #expect(refund == RefundAccount(transferId: "t-1", account: "alice", amount: 10_000))
        rejected.expectNone(TransferFailed.self)
        #expect(host.transfer("t-1")?.step == .refunding)

        let refunded = try await host.bankReplies(AccountRefunded(transferId: "t-1", account: "alice", amount: 10_000, fee: 10), transferId: "t-1")
        let failed = try refunded.expectPublished(TransferFailed.self, to: App.transferEventsExchange)
        #expect(failed == TransferFailed(transferId: "t-1", reason: "AccountClosed", refunded: 10_000, feesLost: 35))
        #expect(host.isCompleted(TransferSaga.self, correlationId: "t-1"))
    }

    @Test(arguments: [
        TransferRequested(transferId: "t-zero", fromAccount: "a", toAccount: "b", amount: 0),
        TransferRequested(transferId: "t-neg", fromAccount: "a", toAccount: "b", amount: -5),
        TransferRequested(transferId: "t-same", fromAccount: "a", toAccount: "a", amount: 100, batchId: "b-9"),
    ])
    func invalidRequestFailsImmediately(_ invalid: TransferRequested) async throws {
        let result = try await host.deliver(invalid)
        #expect(result.outcome(of: TransferSaga.self) == .startedAndCompleted)
        let failed = try result.expectPublished(TransferFailed.self, to: App.transferEventsExchange, routingKey: "TransferFailed")
        #expect(failed == TransferFailed(transferId: invalid.transferId, reason: "InvalidRequest", refunded: 0, feesLost: 0,
                                         batchId: invalid.batchId))
        #expect(result.sent.isEmpty && result.timeoutsRequested.isEmpty)
        #expect(host.liveSagaCount == 0)
    }

    @Test func unansweredCommandIsResentWithTheSameIdThenStalls() async throws {
        let started = try await host.deliver(request, messageId: "req-1")
        let original = try #require(started.sent.first)

        for resend in 1...3 {
            #expect(try await host.advanceTime(by: .seconds(9)).deliveries.isEmpty)
            let fired = try await host.advanceTime(by: .seconds(1))
            #expect(fired.sent.count == 1, "re-send \(resend)")
            let again = try #require(fired.sent.first)
            #expect(again.messageId == original.messageId)
            #expect(again.body == original.body && again.type == "DebitAccount")
            #expect(again.correlationId == "t-1" && again.replyTo == "transfers" && again.queue == "bank")
            fired.expectNone(TransferStalled.self)
            #expect(host.transfer("t-1")?.attempts == resend + 1)
        }

        let stall = try await host.advanceTime(by: .seconds(10))
        #expect(stall.sent.isEmpty)
        let stalled = try stall.expectPublished(TransferStalled.self, to: App.transferEventsExchange, routingKey: "TransferStalled")
        #expect(stalled == TransferStalled(transferId: "t-1", waitingFor: "DebitAccount", attempts: 4))

        let quiet = try await host.advanceTime(by: .seconds(3600))
        quiet.expectNothingEmitted()
        #expect(host.published.filter { $0.type == "TransferStalled" }.count == 1, "stall is published once")
        #expect(host.isLive(TransferSaga.self, correlationId: "t-1"), "a stalled transfer keeps waiting")

        // A late reply still completes it.
        let late = try await host.bankReplies(AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25), transferId: "t-1")
        try late.expectSent(CreditAccount.self, to: App.bankQueue)
        let done = try await host.bankReplies(AccountCredited(transferId: "t-1", account: "bob", amount: 10_000, fee: 15), transferId: "t-1")
        #expect(try done.expectPublished(TransferCompleted.self).fees == 40)
        #expect(host.isCompleted(TransferSaga.self, correlationId: "t-1"))
        #expect(try await host.advanceTime(by: .seconds(3600)).deliveries.isEmpty)
    }

    @Test func staleTimeoutOfAnAnsweredStepIsIgnored() async throws {
        try await host.deliver(request)
        try await host.advanceTime(by: .seconds(5))
        try await host.bankReplies(AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25), transferId: "t-1")
        // t=10s: the debit's timeout fires for an answered step.
        let stale = try await host.advanceTime(by: .seconds(5))
        #expect(stale.firedTimeouts.count == 1)
        stale.expectNothingEmitted()
        // t=15s: the credit's own timeout re-sends the credit.
        let resent = try await host.advanceTime(by: .seconds(5))
        try resent.expectSent(CreditAccount.self, to: App.bankQueue)
        #expect(host.transfer("t-1")?.attempts == 2)
    }

    @Test func bankTimeoutIsConfigurable() async throws {
        let fast = makeAppHost(bankTimeout: .seconds(3))
        let started = try await fast.deliver(request)
        #expect(started.timeoutsRequested.map(\.dueAt) == [SagaTestHost.defaultStartDate.addingTimeInterval(3)])
        #expect(try started.expectTimeoutRequested(BankReplyTimeout.self, after: .seconds(3))
            == BankReplyTimeout(step: .debiting, attempt: 1))
        let fired = try await fast.advanceTime(by: .seconds(3))
        try fired.expectSent(DebitAccount.self, to: App.bankQueue)
    }

    @Test func duplicateReplies() async throws {
        try await host.deliver(request)
        let debited = AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25)
        let first = try await host.bankReplies(debited, transferId: "t-1", messageId: "bank-1")
        try first.expectSent(CreditAccount.self)
        let stateAfterFirst = host.transfer("t-1")

        // The same message again (redelivery): the inbox drops it.
        let redelivered = try await host.bankReplies(debited, transferId: "t-1", messageId: "bank-1")
        #expect(redelivered.isDuplicate)
        redelivered.expectNothingEmitted()

        // The same reply with a new id (the bank answered a re-sent command twice): ignored by the step check.
        let again = try await host.bankReplies(debited, transferId: "t-1", messageId: "bank-2")
        #expect(!again.isDuplicate)
        again.expectNothingEmitted()
        #expect(again.timeoutsRequested.isEmpty)
        #expect(host.transfer("t-1") == stateAfterFirst)

        // A reply for another step (a late debit rejection) is ignored too.
        let wrongStep = try await host.bankReplies(DebitRejected(transferId: "t-1", account: "alice", reason: "x"), transferId: "t-1")
        wrongStep.expectNothingEmitted()
        #expect(host.transfer("t-1") == stateAfterFirst)
    }

    @Test func lateReplyAfterCompletionIsDiscarded() async throws {
        try await host.deliver(request)
        try await host.bankReplies(DebitRejected(transferId: "t-1", account: "alice", reason: "InsufficientFunds"), transferId: "t-1")
        let late = try await host.bankReplies(AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25), transferId: "t-1")
        #expect(late.outcome(of: TransferSaga.self) == .notFound(.discard))
        #expect(late.disposition == .handled)
        late.expectNothingEmitted()
        #expect(host.liveSagaCount == 0)
    }

    @Test func replyWithoutCorrelationIdFallsBackToTheBodysTransferId() async throws {
        try await host.deliver(request)
        let reply = try await host.deliver(AccountDebited(transferId: "t-1", account: "alice", amount: 10_000, fee: 25))
        #expect(reply.outcome(of: TransferSaga.self, correlationId: "t-1") == .updated)
        try reply.expectSent(CreditAccount.self)
    }

    @Test func terminalEventsCarryTheBatchId() async throws {
        try await host.deliver(TransferRequested(transferId: "t-ok", fromAccount: "a", toAccount: "b", amount: 5, batchId: "b-1"))
        try await host.bankReplies(AccountDebited(transferId: "t-ok", account: "a", amount: 5, fee: 25), transferId: "t-ok")
        let credited = try await host.bankReplies(AccountCredited(transferId: "t-ok", account: "b", amount: 5, fee: 15), transferId: "t-ok")
        #expect(try credited.expectPublished(TransferCompleted.self).batchId == "b-1")
        #expect(credited.published.first?.bodyText.contains(#""batchId":"b-1""#) == true)

        try await host.deliver(TransferRequested(transferId: "t-ko", fromAccount: "a", toAccount: "b", amount: 5, batchId: "b-1"))
        let rejected = try await host.bankReplies(DebitRejected(transferId: "t-ko", account: "a", reason: "InsufficientFunds"), transferId: "t-ko")
        #expect(try rejected.expectPublished(TransferFailed.self).batchId == "b-1")
        // The payout saga does not exist: the event delivered to `payouts` is discarded.
        let toPayouts = try await host.deliver(try #require(rejected.published.first), queue: App.payoutsQueue)
        #expect(toPayouts.outcome(of: PayoutSaga.self) == .notFound(.discard))
    }

    @Test func malformedRequestIsRejected() async throws {
        let body = Data(#"{"transferId":"t-1","fromAccount":"a","amount":5}"#.utf8)
        await #expect(throws: SagaError.malformedMessage(type: "TransferRequested", reason: "missing required field 'toAccount'")) {
            try await host.deliver(IncomingMessage(messageId: "bad", type: "TransferRequested", body: body, queue: App.transfersQueue))
        }
    }
}

@Suite struct FeeOverflowTests {
    /// Fees come from the bank (outside the repository) and from events anyone may publish. A sum that
    /// does not fit an Int used to trap: the endpoint process crashed on the reply, with every message in
    /// flight, again at each redelivery until the poison-message count diverted it. It is now a malformed
    /// message (error queue), and the transfer goes on waiting for a sensible reply.
    @Test func transferFeesThatOverflowAreRefusedNotACrash() async {
        await #expect(processExitsWith: .success) {
            let host = SagaTestHost(registry: MoneyTransferApp.registry(), endpointAddress: "transfers")
            _ = try await host.deliver(TransferRequested(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 10))
            _ = try await host.deliver(AccountDebited(transferId: "t-1", account: "a", amount: 10, fee: Int.max),
                                       correlationId: "t-1")
            do {
                _ = try await host.deliver(AccountCredited(transferId: "t-1", account: "b", amount: 10, fee: 15),
                                           correlationId: "t-1")
                exit(1)
            } catch let error as SagaError {
                guard case .malformedMessage = error, host.isLive(TransferSaga.self, correlationId: "t-1") else { exit(1) }
            }
        }
    }

    @Test func payoutFeesThatOverflowAreRefusedNotACrash() async {
        await #expect(processExitsWith: .success) {
            let host = SagaTestHost(registry: MoneyTransferApp.registry(), endpointAddress: "transfers")
            _ = try await host.deliver(PayoutRequested(batchId: "b-1", transfers: [
                .init(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 10),
                .init(transferId: "t-2", fromAccount: "a", toAccount: "c", amount: 10),
            ]), queue: "payouts")
            _ = try await host.deliver(TransferCompleted(transferId: "t-1", amount: 10, fees: Int.max, batchId: "b-1"),
                                       queue: "payouts")
            do {
                _ = try await host.deliver(TransferFailed(transferId: "t-2", reason: "x", refunded: 10, feesLost: 35,
                                                          batchId: "b-1"), queue: "payouts")
                exit(1)
            } catch let error as SagaError {
                guard case .malformedMessage = error, host.isLive(PayoutSaga.self, correlationId: "b-1") else { exit(1) }
            }
        }
    }
}
