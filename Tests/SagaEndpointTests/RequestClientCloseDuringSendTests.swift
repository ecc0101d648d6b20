import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// `close()` ends every request of the client with `.closed`, also one still waiting for its request's
/// confirm: no reply can come once the reply queue is gone, and the caller should not wait out its timeout
/// to be told something else (`.notConfirmed`).
@Suite("Request client: close() while a request waits for its confirm", .timeLimit(.minutes(3)))
struct RequestClientCloseDuringSendTests {
    // Failed before the fix: the request waited its whole timeout (20 s) for the held-back confirm and then
    // threw `.notConfirmed` instead of `.closed`.
    @Test("a request whose confirm is held back ends with .closed when the client is closed")
    func closeWhileUnconfirmed() async throws {
        let harness = try await EndpointHarness.make()
        let session = try await MessageSession.connect(url: harness.url, connectionName: TestBroker.uniqueName("requests"),
                                                       appId: "web-shop")
        let client = try await RequestClient.start(session: session)
        let queue = "stalled-bank"
        try await harness.connection.declareQueue(QueueDeclaration(name: queue, durable: true))
        // A suspended queue process takes the request in but confirms nothing.
        try await runOnThread { [vhost = harness.vhost] in
            try TestBroker.queueProcess(queue, in: vhost, "suspend")
        }
        let request = Task {
            try await client.request(DebitAccount(transferId: "t-1", account: "alice", amount: 100), to: queue,
                                     timeout: .seconds(20), messageId: "request-close-1")
        }
        // Time for the request to be published (closed before, it ends with `.closed` all the same).
        try await Task.sleep(for: .milliseconds(300))
        await client.close()
        let result = await request.result
        try await runOnThread { [vhost = harness.vhost] in
            try TestBroker.queueProcess(queue, in: vhost, "resume")
        }
        #expect(throws: MessageSessionError.self) { try result.get() }
        if case .failure(let error as MessageSessionError) = result {
            #expect(error.code == .closed, "\(error)")
        }
        await session.close()
        await harness.tearDown()
    }
}
