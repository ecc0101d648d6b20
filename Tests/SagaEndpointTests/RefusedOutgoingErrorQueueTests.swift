// Outgoing messages the broker keeps refusing (basic.nack: a queue full under `overflow: reject-publish`).
// They are safe in the outbox and sent again every `outboxRedispatchDelay`; refused for longer than
// `refusedTimeout`, they go to the endpoint's error queue with headers saying why, replayable to where they
// were sent. Failed before: such a row stayed in the outbox and was sent again for as long as the endpoint
// ran (nothing reached the error queue within the 60 s these tests wait).
import AMQPTransport
import BrokerTestSupport
import Foundation
import Sagas
import Testing
@testable import SagaEndpoint

@Suite("Refused outgoing messages go to the error queue after refusedTimeout", .timeLimit(.minutes(4)))
struct RefusedOutgoingErrorQueueTests {
    /// A queue that holds one message and refuses the next (`reject-publish`), filled.
    private func declareFullQueue(_ name: String, on harness: EndpointHarness) async throws {
        try await harness.connection.declareQueue(QueueDeclaration(
            name: name, arguments: ["x-max-length": .int64(1), "x-overflow": .string("reject-publish")]))
        try await harness.connection.publish(.toQueue(name, AMQPMessage(body: Data("filler".utf8))))
    }

    @Test("a command to a queue that stays full goes to the error queue, and replays there once it has room")
    func refusedCommand() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("orders")
        try await declareFullQueue("shipping", on: harness)
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { order, context in try context.send(Explode(note: "ship " + order.note), to: "shipping") }
        let endpoint = harness.startEndpoint(registry, queues: ["orders"], database: "orders") {
            $0.outboxRedispatchDelay = .milliseconds(300)
            $0.refusedTimeout = .seconds(2)
        }
        try await harness.send(Explode(note: "a"), to: "orders", messageId: "order-1")

        let copies = try await harness.errorMessages(of: "orders", count: 1, timeout: .seconds(60))
        let copy = try #require(copies.first)
        #expect(copy.header("x-error-type") == "RefusedMessage")
        #expect(copy.header("x-original-queue") == "shipping")
        #expect(copy.header("x-original-exchange") == nil)
        #expect(copy.header("x-error-reason")?.contains("full") == true, "\(copy.header("x-error-reason") ?? "")")
        #expect(copy.header("x-error-reason")?.contains("order-1") == true, "names the incoming message")
        #expect(copy.properties.type == Explode.messageType)
        await harness.stop(endpoint)
        let backlog = try await harness.withStore("orders") { try $0.outboxBacklog() }
        #expect(backlog == 0, "the moved command counts as dispatched")

        // `errorMessages` took the copy off the queue; put it back as the endpoint left it, make room, replay.
        try await harness.connection.publish(.toQueue("orders.error", copy.message))
        _ = try await harness.connection.purgeQueue("shipping")
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "orders.error")
        #expect(try await admin.replay(messageId: try #require(copy.properties.messageId)))
        let shipped = try await harness.receive(from: "shipping", count: 1, timeout: .seconds(20))
        #expect(shipped.map(\.properties.messageId) == [copy.properties.messageId], "the command under its own id")
        #expect(shipped.first?.header("x-error-type") == nil, "the error headers are gone")
        await harness.tearDown()
    }

    @Test("an event one of whose queues stays full goes to the error queue, and replays to its exchange")
    func refusedEvent() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("announcers")
        try await harness.connection.declareExchange(ExchangeDeclaration(name: "news", kind: .topic))
        try await declareFullQueue("crowded", on: harness)
        try await harness.connection.declareQueue(QueueDeclaration(name: "healthy"))
        for queue in ["crowded", "healthy"] {
            try await harness.connection.bind(BindingDeclaration(source: "news", destination: queue, routingKey: "#"))
        }
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { message, context in
            try context.publish(Explode(note: "news of \(message.note)"), to: "news")
        }
        let endpoint = harness.startEndpoint(registry, queues: ["announcers"], database: "announcers") {
            $0.outboxRedispatchDelay = .milliseconds(300)
            $0.refusedTimeout = .seconds(2)
        }
        try await harness.send(Explode(note: "a"), to: "announcers", messageId: "announce-1")

        let copies = try await harness.errorMessages(of: "announcers", count: 1, timeout: .seconds(60))
        let copy = try #require(copies.first)
        let eventId = try #require(copy.properties.messageId)
        #expect(copy.header("x-error-type") == "RefusedMessage")
        #expect(copy.header("x-original-exchange") == "news")
        #expect(copy.header("x-original-routing-key") == Explode.messageType)
        #expect(copy.header("x-original-queue") == nil, "an event has no one queue to go back to")
        await harness.stop(endpoint)
        #expect(try await harness.rowCount("announcers", "outbox", where: "dispatched_at IS NULL") == 0)
        // Every copy the healthy queue got is the one event, under its one id (its receiver keeps the first).
        let healthyCopies = try await harness.depth("healthy")
        let early = try await harness.receive(from: "healthy", count: healthyCopies, timeout: .seconds(20))
        #expect(Set(early.compactMap(\.properties.messageId)) == [eventId])

        try await harness.connection.publish(.toQueue("announcers.error", copy.message))
        _ = try await harness.connection.purgeQueue("crowded")
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "announcers.error")
        #expect(try await admin.replay(messageId: eventId))
        let delivered = try await harness.receive(from: "crowded", count: 1, timeout: .seconds(20))
        #expect(delivered.map(\.properties.messageId) == [eventId], "the event under its own id")
        #expect(delivered.first?.header("x-original-exchange") == nil, "the error headers are gone")
        let again = try await harness.receive(from: "healthy", count: 1, timeout: .seconds(20))
        #expect(again.map(\.properties.messageId) == [eventId], "the other bound queue gets it once more")
        #expect(try await harness.depth("announcers.error") == 0)
        await harness.tearDown()
    }
}
