import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// A send to a queue an operator's policy keeps full (`max-length` with `overflow: reject-publish`): the
/// broker nacks it. Failed before: the error said only "the broker refused it (basic.nack)", nothing about
/// the likely cause or what to do, while the other refusals (no queue, no exchange, no permission) say both.
@Suite("MessageSession: a send to a full queue", .timeLimit(.minutes(2)))
struct MessageSessionFullQueueTests {
    @Test("nacked names the message, the queue, the likely cause and what to do")
    func nackedSaysWhy() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("intake")
        try await harness.refusePublishes(to: "intake", policy: "intake-full")
        let session = MessageSession(connection: harness.connection, appId: "web-shop")
        let error = await #expect(throws: MessageSessionError.self) {
            try await session.send(Explode(note: "x"), to: "intake", messageId: "full-1")
        }
        #expect(error?.code == .nacked)
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("full-1") && text.contains("'intake'"), "\(text)")
        #expect(text.contains("full") && text.contains("reject-publish") && text.contains("same message id"), "\(text)")
        await harness.tearDown()
    }
}
