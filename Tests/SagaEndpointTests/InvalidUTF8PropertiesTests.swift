// Short-string properties that are not UTF-8, as other clients can send them (AMQP short strings are bytes
// on the wire): decoded with U+FFFD in place of each invalid byte, they are not what was sent.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Sagas
import Testing
@testable import SagaEndpoint

@Suite("Properties that are not UTF-8", .timeLimit(.minutes(3)))
struct InvalidUTF8PropertiesTests {
    // Failed before (a review helper's hostile-input run, with pika): two messages whose ids differ only in
    // invalid bytes decoded to one id, and the second was dropped as a duplicate, with no error copy and no
    // log line; a bad message whose app_id is 100 invalid bytes got a copy with a 300-byte app_id, refused
    // at every publish, so it came round every few seconds for ever.
    @Test("such messages go to the error queue as MalformedProperties, each its own, with a copy AMQP can carry")
    func invalidUTF8GoesToTheErrorQueue() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("pings")
        try await harness.declareQueue("pongs")
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { ping, context in try context.send(Explode(note: "pong " + ping.note), to: "pongs") }
        let endpoint = harness.startEndpoint(registry, queues: ["pings"], database: "pings")
        let body = Array(try MessageCoding.encode(Explode(note: "x")))
        let type = Array(Explode.messageType.utf8)
        for first in [UInt8(0xFF), 0xFE] {
            try RawPublisher.publish(url: harness.url, queue: "pings", body: body, messageId: [first] + Array("-same".utf8),
                                     type: type)
        }
        try RawPublisher.publish(url: harness.url, queue: "pings", body: Array("{not json".utf8),
                                 messageId: Array("long-app-id".utf8), type: type, appId: [UInt8](repeating: 0xFF, count: 100))
        try RawPublisher.publish(url: harness.url, queue: "pings", body: body, messageId: Array("bad-reply-to".utf8),
                                 type: type, replyTo: Array("pongs".utf8) + [0xC3])
        try await harness.send(Explode(note: "fine"), to: "pings", messageId: "fine")

        let copies = try await harness.errorMessages(of: "pings", count: 4, timeout: .seconds(30))
        #expect(copies.count == 4, "each reached the error queue: \(copies.map { $0.properties.messageId ?? "" })")
        let types = copies.map { $0.header("x-error-type") ?? "" }.sorted()
        #expect(types == ["MalformedMessage", "MalformedProperties", "MalformedProperties", "MalformedProperties"])
        let malformed = copies.filter { $0.header("x-error-type") == "MalformedProperties" }
        #expect(malformed.contains { $0.header("x-error-reason")?.contains("reply-to") == true })
        #expect(malformed.filter { $0.header("x-error-reason")?.contains("message-id") == true }.count == 2)
        let appId = copies.first { $0.properties.messageId == "long-app-id" }?.properties.appId
        #expect((appId?.utf8.count ?? 0) <= 255 && appId?.hasPrefix("\u{FFFD}") == true, "\(appId ?? "none")")
        let pongs = try await harness.receive(from: "pongs", count: 1, timeout: .seconds(20))
        #expect(pongs.count == 1, "the good message still goes through")
        await harness.stop(endpoint)
        #expect(try await harness.depth("pings") == 0, "nothing held")
        await harness.tearDown()
    }
}
