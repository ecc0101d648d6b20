import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// A reply can come before its request's confirm: a responder answers as soon as the request is delivered,
/// while the broker confirms a persistent request once it is on disk or acknowledged. The reply is proof
/// that the request was taken, so the request ends with it, whatever becomes of the confirm.
@Suite("Request client: a reply before the request's confirm", .timeLimit(.minutes(3)))
struct RequestClientReplyBeforeConfirmTests {
    @Test("a reply that comes while the request's confirm is held back ends the request with that reply")
    func replyBeforeConfirm() async throws {
        let harness = try await EndpointHarness.make()
        let session = try await MessageSession.connect(url: harness.url, connectionName: TestBroker.uniqueName("requests"),
                                                       appId: "web-shop")
        let client = try await RequestClient.start(session: session)
        let queue = "slow-bank"
        try await harness.connection.declareQueue(QueueDeclaration(name: queue, durable: true))
        // A suspended queue process takes the request in (its channel routed it) but confirms nothing.
        try await runOnThread { [vhost = harness.vhost] in try TestBroker.queueProcess(queue, in: vhost, "suspend") }

        let request = Task {
            try await client.request(DebitAccount(transferId: "t-1", account: "alice", amount: 100), to: queue,
                                     expecting: AccountDebited.self, timeout: .seconds(20), messageId: "request-1")
        }
        // The answer, as a responder sends it: to the reply queue, correlated by the request's message id.
        try await Task.sleep(for: .milliseconds(300))
        _ = try await session.send(AccountDebited(transferId: "t-1", account: "alice", amount: 100, fee: 1),
                                   to: client.replyQueue, correlationId: "request-1")
        // Awaited with the queue still suspended: before the fix the request waited out its timeout for the
        // confirm and then threw `.notConfirmed`, dropping the reply it had.
        let result = await request.result
        try await runOnThread { [vhost = harness.vhost] in try TestBroker.queueProcess(queue, in: vhost, "resume") }
        #expect(try result.get() == AccountDebited(transferId: "t-1", account: "alice", amount: 100, fee: 1))

        await client.close()
        await session.close()
        await harness.tearDown()
    }
}
