// README ("Metrics, health and logs"): records about a message carry its `message_id`, `message_type`,
// `queue` and `delivery_tag`.
import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

@Suite("Log records about a message name it", .timeLimit(.minutes(3)))
struct MessageLogMetadataTests {
    // Failed before: a delivery refused before it became a message (a type nobody handles) was logged
    // without `message_type`, the one field an operator needs to see which handler is missing.
    @Test("a message of a type nobody handles is logged with its id, type, queue and delivery tag")
    func aRejectedMessageIsLoggedWithItsType() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("calls")
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in }
        try await harness.sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: "nobody-1",
            type: "NobodyHandlesThis"), to: "calls")
        let capture = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["calls"], database: "calls",
                                            logger: capture.logger(label: "log-metadata"))
        let task = Task { try await endpoint.run() }
        try await capture.waitUntil(timeout: .seconds(30), message: "the rejection logged") {
            capture.log.entries.contains { $0.message == "message rejected to the error queue" }
        }
        let record = try #require(capture.log.entries.first { $0.message == "message rejected to the error queue" })
        #expect(record.metadata["message_id"] == "nobody-1", "\(record.line)")
        #expect(record.metadata["message_type"] == "NobodyHandlesThis", "\(record.line)")
        #expect(record.metadata["queue"] == "calls", "\(record.line)")
        #expect(record.metadata["delivery_tag"].flatMap(UInt64.init) != nil, "\(record.line)")
        #expect(try await harness.depth("calls.error") == 1)
        task.cancel()
        _ = await task.result
        await harness.tearDown()
    }
}
