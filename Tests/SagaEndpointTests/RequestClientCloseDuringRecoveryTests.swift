import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

/// `RequestClient.close()` deletes its reply queue. Closed while its connection is lost (a recovery under
/// way), that delete cannot reach the broker. Failed before: the queue stayed recorded in the connection's
/// topology, so recovery declared it again on the new connection, where it stayed (nobody consuming it,
/// replies to it lost rather than returned) until 5 minutes after the last recovery (`x-expires`).
@Suite("Request client closed while its connection is lost", .timeLimit(.minutes(3)))
struct RequestClientCloseDuringRecoveryTests {
    @Test("recovery deletes the reply queue of a client closed meanwhile, rather than declare it again")
    func closeWhileRecovering() async throws {
        let harness = try await EndpointHarness.make()
        let name = TestBroker.uniqueName("requests")
        // Recovery waits 5 s before it reconnects: the close falls in that gap.
        let connection = try await AMQPConnection.connect(
            url: harness.url, connectionName: name,
            recovery: RecoveryPolicy(initialDelay: .seconds(5), maximumDelay: .seconds(5), jitter: 0))
        let session = MessageSession(connection: connection, appId: "web-shop")
        let client = try await RequestClient.start(session: session)
        let queue = client.replyQueue
        #expect(try await runOnThread { try TestBroker.closeConnections(named: name) } == 1)
        await client.close()
        #expect(await connection.recoveryCount == 0, "closed while the connection was lost")

        try await waitUntil(timeout: .seconds(60), message: "the connection recovered") {
            await connection.recoveryCount == 1
        }
        await #expect(throws: AMQPError.self, "the reply queue is gone once the connection is back") {
            try await harness.connection.checkQueue(queue)
        }
        await session.close()
        await harness.tearDown()
    }
}
