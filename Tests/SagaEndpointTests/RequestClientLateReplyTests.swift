import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// A request that ends without its reply (`.notConfirmed`: "it may or may not have been taken, send it
/// again with the same message id") may still be taken and answered. The endpoint's inbox drops a copy sent
/// again under that id, and does not send the reply again (it was confirmed): the late reply is the only
/// answer there is, so the client keeps it for the request sent again under that id.
@Suite("Request client: a late reply answers the request sent again under its id", .timeLimit(.minutes(3)))
struct RequestClientLateReplyTests {
    // Failed before the fix: the late reply was dropped ("reply for no waiting request dropped") and the
    // request sent again waited out its timeout, ending as `.noReply`.
    @Test("a request not confirmed in time is answered, when sent again under its id, by the reply that came late")
    func replyAfterNotConfirmed() async throws {
        let harness = try await EndpointHarness.make()
        let log = LogCapture()
        let session = try await MessageSession.connect(url: harness.url, connectionName: TestBroker.uniqueName("requests"),
                                                       appId: "web-shop")
        let client = try await RequestClient.start(session: session, logger: log.logger(label: "requests"))
        let debit = DebitAccount(transferId: "t-late", account: "alice", amount: 100)
        // A suspended queue process takes the request in but confirms nothing, and delivers nothing.
        try await runOnThread { [vhost = harness.vhost] in try TestBroker.queueProcess("bank", in: vhost, "suspend") }
        do {
            _ = try await client.request(debit, to: "bank", timeout: .seconds(2), messageId: "debit-late")
            Issue.record("a request whose confirm was held back was answered")
        } catch {
            #expect(error.code == .notConfirmed, "\(error)")
        }
        // It was taken after all: the bank handles it once the queue is back, and answers.
        try await runOnThread { [vhost = harness.vhost] in try TestBroker.queueProcess("bank", in: vhost, "resume") }
        let bank = harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        try await log.waitUntil(timeout: .seconds(30), message: "the late reply reached the client") {
            log.log.entries.contains { $0.metadata["correlation_id"] == "debit-late" }
        }
        // Sent again under its id, as `.notConfirmed` says to: the bank's inbox drops the copy, so the reply
        // that came late is the only one.
        let debited = try await client.request(debit, to: "bank", expecting: AccountDebited.self,
                                               timeout: .seconds(10), messageId: "debit-late")
        #expect(debited == AccountDebited(transferId: "t-late", account: "alice", amount: 100,
                                          fee: BankSimulator().debitFee))
        // Taken once: a kept reply answers one request only, a third under that id waits for a reply of its own.
        do {
            _ = try await client.request(debit, to: "bank", timeout: .seconds(2), messageId: "debit-late")
            Issue.record("a kept reply answered two requests")
        } catch {
            #expect(error.code == .noReply, "\(error)")
        }
        await harness.stop(bank)
        await client.close()
        await session.close()
        await harness.tearDown()
    }
}
