import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

/// `RequestClient.start` given a reply queue name it cannot use as a `reply_to`.
@Suite("Request client reply queue name", .timeLimit(.minutes(6)))
struct RequestClientReplyQueueNameTests {
    // Failed before: an empty name (read from an unset setting) declared a server-named queue the client
    // consumed, while every request carried an empty reply_to, which an endpoint's `reply` refuses
    // (NoReplyAddress, to its error queue): each request ended as noReply after its timeout.
    @Test("an empty reply queue name is refused at start, naming the setting")
    func emptyName() async throws {
        let harness = try await EndpointHarness.make()
        let session = MessageSession(connection: harness.connection, appId: "web-shop")
        do {
            let client = try await RequestClient.start(session: session, replyQueue: "")
            Issue.record("a client started on an empty reply queue name: '\(client.replyQueue)'")
            await client.close()
        } catch let error as AMQPError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("replyQueue"), "\(error)")
        }
        await harness.tearDown()
    }
}
