import Foundation
import MoneyTransfer
import Sagas
import SagaTesting
import Testing

@Suite struct PayoutSagaTests {
    let host = makeAppHost()

    func entry(_ id: String, _ from: String, _ to: String, _ amount: Int) -> PayoutRequested.Transfer {
        PayoutRequested.Transfer(transferId: id, fromAccount: from, toAccount: to, amount: amount)
    }

    @Test func requestsOneTransferPerEntryWithTheBatchId() async throws {
        let result = try await host.deliver(
            PayoutRequested(batchId: "b-1", transfers: [entry("t-1", "a", "b", 100), entry("t-2", "a", "c", 200)]),
            queue: App.payoutsQueue
        )
        #expect(result.outcome(of: PayoutSaga.self) == .started)
        #expect(try result.decoded(TransferRequested.self) == [
            TransferRequested(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 100, batchId: "b-1"),
            TransferRequested(transferId: "t-2", fromAccount: "a", toAccount: "c", amount: 200, batchId: "b-1"),
        ])
        #expect(result.sent.allSatisfy { $0.queue == App.transfersQueue })
        #expect(host.state(of: PayoutSaga.self, correlationId: "b-1")?.pending == ["t-1", "t-2"])
    }

    @Test func countsDownTerminalEventsIgnoringDuplicatesAndSumsFees() async throws {
        try await host.deliver(PayoutRequested(batchId: "b-1", transfers: [
            entry("t-1", "a", "b", 100), entry("t-2", "a", "c", 200), entry("t-3", "a", "d", 300),
        ]), queue: App.payoutsQueue)

        let first = try await host.deliver(TransferCompleted(transferId: "t-1", amount: 100, fees: 40, batchId: "b-1"), queue: App.payoutsQueue)
        #expect(first.outcome(of: PayoutSaga.self) == .updated)
        first.expectNothingEmitted()

        // The same transfer's event again, with a new message id: already counted.
        let duplicate = try await host.deliver(TransferCompleted(transferId: "t-1", amount: 100, fees: 40, batchId: "b-1"), queue: App.payoutsQueue)
        duplicate.expectNothingEmitted()
        #expect(host.state(of: PayoutSaga.self, correlationId: "b-1")?.completed == 1)

        // An event of another batch, and one of no batch, do not count.
        let otherBatch = try await host.deliver(TransferCompleted(transferId: "t-2", amount: 200, fees: 40, batchId: "b-2"), queue: App.payoutsQueue)
        #expect(otherBatch.outcome(of: PayoutSaga.self) == .notFound(.discard))
        let noBatch = try await host.deliver(TransferFailed(transferId: "t-2", reason: "x", refunded: 0, feesLost: 0), queue: App.payoutsQueue)
        #expect(noBatch.disposition == .handled && noBatch.sagas.isEmpty, "not for the payout saga, not an error")

        try await host.deliver(TransferFailed(transferId: "t-2", reason: "AccountClosed", refunded: 200, feesLost: 35, batchId: "b-1"), queue: App.payoutsQueue)
        let last = try await host.deliver(TransferCompleted(transferId: "t-3", amount: 300, fees: 40, batchId: "b-1"), queue: App.payoutsQueue)
        #expect(last.outcome(of: PayoutSaga.self) == .completed)
        let done = try last.expectPublished(PayoutCompleted.self, to: App.payoutEventsExchange, routingKey: "PayoutCompleted")
        #expect(done == PayoutCompleted(batchId: "b-1", completed: 2, failed: 1, fees: 115))
        #expect(host.isCompleted(PayoutSaga.self, correlationId: "b-1"))
    }

    @Test func emptyBatchCompletesAtOnce() async throws {
        let result = try await host.deliver(PayoutRequested(batchId: "b-empty", transfers: []), queue: App.payoutsQueue)
        #expect(result.outcome(of: PayoutSaga.self) == .startedAndCompleted)
        #expect(try result.expectPublished(PayoutCompleted.self, to: App.payoutEventsExchange)
            == PayoutCompleted(batchId: "b-empty", completed: 0, failed: 0, fees: 0))
        #expect(result.sent.isEmpty && host.liveSagaCount == 0)
    }

    @Test func endToEndBatchWithTheSimulatedBank() async throws {
        let bank = makeBankHost()
        let start = try await host.deliver(PayoutRequested(batchId: "b-7", transfers: [
            entry("t-ok", "alice", "bob", 1_000),             // completed: fees 25 + 15
            entry("t-closed", "alice", "closed-carol", 2_000), // credit rejected, refunded: feesLost 25 + 10
            entry("t-poor", "poor-dave", "bob", 3_000),        // debit rejected: feesLost 0
            entry("t-invalid", "erin", "erin", 4_000),         // invalid request: feesLost 0
        ]), queue: App.payoutsQueue)
        let events = try await pump(start.emitted, app: host, bank: bank)

        let failed = try events.filter { $0.type == "TransferFailed" }.map { try $0.decode(TransferFailed.self) }
        #expect(Set(failed) == [
            TransferFailed(transferId: "t-closed", reason: "AccountClosed", refunded: 2_000, feesLost: 35, batchId: "b-7"),
            TransferFailed(transferId: "t-poor", reason: "InsufficientFunds", refunded: 0, feesLost: 0, batchId: "b-7"),
            TransferFailed(transferId: "t-invalid", reason: "InvalidRequest", refunded: 0, feesLost: 0, batchId: "b-7"),
        ])
        let payout = try #require(events.last { $0.type == "PayoutCompleted" })
        #expect(try payout.decode(PayoutCompleted.self) == PayoutCompleted(batchId: "b-7", completed: 1, failed: 3, fees: 75))
        #expect(host.liveSagaCount == 0)
        #expect(host.pendingTimeouts.isEmpty)

        // A terminal event redelivered after the payout completed is discarded.
        let late = try await host.deliver(try #require(events.first { $0.type == "TransferCompleted" }), queue: App.payoutsQueue)
        #expect(late.isDuplicate)
    }
}

@Suite struct BankSimulatorTests {
    @Test func repliesWithFeesAndPreservesCorrelation() async throws {
        let bank = makeBankHost(BankSimulator(debitFee: 7, creditFee: 5, refundFee: 3))
        let debit = try await bank.deliver(DebitAccount(transferId: "t-1", account: "a", amount: 50),
                                           correlationId: "t-1", replyTo: "transfers")
        #expect(try debit.expectReplied(AccountDebited.self, to: "transfers")
            == AccountDebited(transferId: "t-1", account: "a", amount: 50, fee: 7))
        #expect(debit.replied.first?.correlationId == "t-1")

        let credit = try await bank.deliver(CreditAccount(transferId: "t-1", account: "b", amount: 50),
                                            correlationId: "t-1", replyTo: "transfers")
        #expect(try credit.expectReplied(AccountCredited.self, to: "transfers").fee == 5)

        let refund = try await bank.deliver(RefundAccount(transferId: "t-1", account: "a", amount: 50),
                                            correlationId: "t-1", replyTo: "transfers")
        #expect(try refund.expectReplied(AccountRefunded.self, to: "transfers")
            == AccountRefunded(transferId: "t-1", account: "a", amount: 50, fee: 3))
    }

    @Test func closedAndUnderfundedAccounts() async throws {
        let bank = makeBankHost(BankSimulator(closedAccounts: ["zed"], underfundedAccounts: ["yan"]))
        let closed = try await bank.deliver(CreditAccount(transferId: "t", account: "zed", amount: 1), replyTo: "transfers")
        #expect(try closed.expectReplied(CreditRejected.self).reason == "AccountClosed")
        let closedByPrefix = try await bank.deliver(CreditAccount(transferId: "t", account: "closed-1", amount: 1), replyTo: "transfers")
        #expect(try closedByPrefix.expectReplied(CreditRejected.self).reason == "AccountClosed")
        let poor = try await bank.deliver(DebitAccount(transferId: "t", account: "yan", amount: 1), replyTo: "transfers")
        #expect(try poor.expectReplied(DebitRejected.self) == DebitRejected(transferId: "t", account: "yan", reason: "InsufficientFunds"))
        let poorByPrefix = try await bank.deliver(DebitAccount(transferId: "t", account: "poor-1", amount: 1), replyTo: "transfers")
        #expect(try poorByPrefix.expectReplied(DebitRejected.self).reason == "InsufficientFunds")
        // A closed account can still be debited; an underfunded one credited.
        try await bank.deliver(DebitAccount(transferId: "t", account: "zed", amount: 1), replyTo: "transfers")
            .expectReplied(AccountDebited.self)
        try await bank.deliver(CreditAccount(transferId: "t", account: "yan", amount: 1), replyTo: "transfers")
            .expectReplied(AccountCredited.self)

        let noPrefixes = BankSimulator(closedAccountPrefix: nil, underfundedAccountPrefix: nil)
        #expect(!noPrefixes.isClosed("closed-1") && !noPrefixes.isUnderfunded("poor-1"))
        #expect(BankSimulator().debitFee == 25 && BankSimulator().creditFee == 15 && BankSimulator().refundFee == 10)
    }

    /// `deliverReply` stands in for the bank in the transfer tests: what it delivers must be what the
    /// bank's own handler answers to the same command, passed on as the broker would.
    @Test func deliverReplyDeliversWhatTheBankAnswers() async throws {
        let (simulatedApp, realApp) = (makeAppHost(), makeAppHost())
        let request = TransferRequested(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 10)
        let command = try #require(try await simulatedApp.deliver(request).sent.first)
        #expect(try await realApp.deliver(request).sent.first == command)
        let answer = try #require(try await makeBankHost().deliver(command).replied.first)

        let real = try await realApp.deliver(answer)
        let simulated = try await simulatedApp.deliverReply(try answer.decode(AccountDebited.self), to: command,
                                                            messageId: answer.messageId)
        #expect(simulated.message == real.message)
        #expect(simulated == real)
        try simulated.expectSent(CreditAccount.self, to: App.bankQueue)
    }

    @Test func commandWithoutReplyToFails() async throws {
        let bank = makeBankHost()
        await #expect(throws: SagaError.self) {
            try await bank.deliver(DebitAccount(transferId: "t", account: "a", amount: 1))
        }
    }

    @Test func endToEndSingleTransfersWithTheSimulatedBank() async throws {
        let app = makeAppHost()
        let bank = makeBankHost()
        let ok = try await app.deliver(TransferRequested(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 10))
        let okEvents = try await pump(ok.emitted, app: app, bank: bank)
        #expect(try okEvents.map { try $0.decode(TransferCompleted.self) } == [TransferCompleted(transferId: "t-1", amount: 10, fees: 40)])

        let closed = try await app.deliver(TransferRequested(transferId: "t-2", fromAccount: "a", toAccount: "closed-b", amount: 10))
        let closedEvents = try await pump(closed.emitted, app: app, bank: bank)
        #expect(try closedEvents.map { try $0.decode(TransferFailed.self) }
            == [TransferFailed(transferId: "t-2", reason: "AccountClosed", refunded: 10, feesLost: 35)])
        #expect(app.liveSagaCount == 0)
    }
}

@Suite struct WireContractTests {
    @Test func typeNames() {
        let types: [(any Message.Type, String)] = [
            (TransferRequested.self, "TransferRequested"), (DebitAccount.self, "DebitAccount"),
            (CreditAccount.self, "CreditAccount"), (RefundAccount.self, "RefundAccount"),
            (AccountDebited.self, "AccountDebited"), (DebitRejected.self, "DebitRejected"),
            (AccountCredited.self, "AccountCredited"), (CreditRejected.self, "CreditRejected"),
            (AccountRefunded.self, "AccountRefunded"), (TransferCompleted.self, "TransferCompleted"),
            (TransferFailed.self, "TransferFailed"), (TransferStalled.self, "TransferStalled"),
            (PayoutRequested.self, "PayoutRequested"), (PayoutCompleted.self, "PayoutCompleted"),
        ]
        for (type, name) in types {
            #expect(type.messageType == name)
        }
    }

    @Test func fieldNames() throws {
        #expect(try jsonKeys(TransferRequested(transferId: "t", fromAccount: "a", toAccount: "b", amount: 1, batchId: "x"))
            == ["transferId", "fromAccount", "toAccount", "amount", "batchId"])
        #expect(try jsonKeys(TransferRequested(transferId: "t", fromAccount: "a", toAccount: "b", amount: 1))
            == ["transferId", "fromAccount", "toAccount", "amount"])
        for command in [try jsonKeys(DebitAccount(transferId: "t", account: "a", amount: 1)),
                        try jsonKeys(CreditAccount(transferId: "t", account: "a", amount: 1)),
                        try jsonKeys(RefundAccount(transferId: "t", account: "a", amount: 1))] {
            #expect(command == ["transferId", "account", "amount"])
        }
        for reply in [try jsonKeys(AccountDebited(transferId: "t", account: "a", amount: 1, fee: 1)),
                      try jsonKeys(AccountCredited(transferId: "t", account: "a", amount: 1, fee: 1)),
                      try jsonKeys(AccountRefunded(transferId: "t", account: "a", amount: 1, fee: 1))] {
            #expect(reply == ["transferId", "account", "amount", "fee"])
        }
        #expect(try jsonKeys(DebitRejected(transferId: "t", account: "a", reason: "r")) == ["transferId", "account", "reason"])
        #expect(try jsonKeys(CreditRejected(transferId: "t", account: "a", reason: "r")) == ["transferId", "account", "reason"])
        #expect(try jsonKeys(TransferCompleted(transferId: "t", amount: 1, fees: 1, batchId: "b"))
            == ["transferId", "amount", "fees", "batchId"])
        #expect(try jsonKeys(TransferFailed(transferId: "t", reason: "r", refunded: 0, feesLost: 0, batchId: "b"))
            == ["transferId", "reason", "refunded", "feesLost", "batchId"])
        #expect(try jsonKeys(TransferStalled(transferId: "t", waitingFor: "DebitAccount", attempts: 4))
            == ["transferId", "waitingFor", "attempts"])
        #expect(try jsonKeys(PayoutCompleted(batchId: "b", completed: 1, failed: 0, fees: 0))
            == ["batchId", "completed", "failed", "fees"])
        let payout = PayoutRequested(batchId: "b", transfers: [.init(transferId: "t", fromAccount: "a", toAccount: "c", amount: 1)])
        #expect(try jsonKeys(payout) == ["batchId", "transfers"])
        let json = try JSONSerialization.jsonObject(with: MessageCoding.encode(payout)) as? [String: Any]
        let entry = try #require((json?["transfers"] as? [[String: Any]])?.first)
        #expect(Set(entry.keys) == ["transferId", "fromAccount", "toAccount", "amount"])
    }

    @Test func exactBodies() throws {
        let body = try MessageCoding.encode(TransferFailed(transferId: "t-1", reason: "AccountClosed", refunded: 500, feesLost: 35))
        #expect(String(decoding: body, as: UTF8.self)
            == #"{"feesLost":35,"reason":"AccountClosed","refunded":500,"transferId":"t-1"}"#)
        // Clients may send null for an absent batchId, and unknown extra fields.
        let request = try MessageCoding.decode(
            TransferRequested.self,
            from: Data(#"{"transferId":"t","fromAccount":"a","toAccount":"b","amount":5,"batchId":null,"note":"x"}"#.utf8),
            messageType: "TransferRequested")
        #expect(request == TransferRequested(transferId: "t", fromAccount: "a", toAccount: "b", amount: 5))
    }

    @Test func addresses() {
        #expect(App.transfersQueue == "transfers" && App.payoutsQueue == "payouts" && App.bankQueue == "bank")
        #expect(App.transferEventsExchange == "transfers.events" && App.payoutEventsExchange == "payouts.events")
        #expect(App.payoutBindingKeys == ["TransferCompleted", "TransferFailed"])
        #expect(Set(App.registry().sagaTypes) == ["TransferSaga", "PayoutSaga"])
    }
}

@Suite struct PayoutEntryValidationTests {
    /// A transfer saga refuses a request without a transferId (no correlation id: its error queue), so
    /// such an entry never ends and its payout used to wait for it for ever, with no event at all.
    @Test func payoutWithAnEntryWithoutTransferIdIsRefusedInsteadOfWaitingForEver() async throws {
        let app = makeAppHost()
        let request = PayoutRequested(batchId: "b-bad", transfers: [
            PayoutRequested.Transfer(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 5),
            PayoutRequested.Transfer(transferId: "", fromAccount: "a", toAccount: "c", amount: 7),
        ])
        await #expect(throws: SagaError.self) {
            try await app.deliver(request, queue: App.payoutsQueue)
        }
        #expect(app.liveSagaCount == 0, "no payout is left waiting for a transfer that can never start")
        #expect(app.sent.isEmpty, "no transfer of the refused batch is requested")
    }

    /// Failed before (a review helper's hostile-input run): a transferId over 255 bytes cannot be the AMQP
    /// correlation_id of its transfer's commands, so that transfer ended in transfers.error while its
    /// payout waited for it for ever.
    @Test func payoutWithATransferIdLongerThanACorrelationIdIsRefused() async throws {
        let app = makeAppHost()
        let request = PayoutRequested(batchId: "b-long", transfers: [
            PayoutRequested.Transfer(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 5),
            PayoutRequested.Transfer(transferId: String(repeating: "t", count: 256), fromAccount: "a", toAccount: "c", amount: 7),
        ])
        await #expect(throws: SagaError.self) {
            try await app.deliver(request, queue: App.payoutsQueue)
        }
        #expect(app.liveSagaCount == 0)
        #expect(app.sent.isEmpty)
        // 255 bytes is still an id.
        let longest = String(repeating: "é", count: 127) + "t"
        try await app.deliver(PayoutRequested(batchId: "b-255", transfers: [
            PayoutRequested.Transfer(transferId: longest, fromAccount: "a", toAccount: "c", amount: 7)]),
                              queue: App.payoutsQueue)
        #expect(app.liveSagaCount == 1)
    }
}
