import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaStore
import SagaTesting
import Sagas
import Testing
@testable import SagaEndpoint

/// A saga that uses every way of emitting a message, run once by `SagaTestHost` and once by a real
/// endpoint: what the endpoint puts on the wire must be what the test kit showed.
struct ParitySaga: Saga {
    static let sagaType = "Parity"
    static let queue = "parity"
    static let outA = "parity.a"
    static let outB = "parity.b"
    static let replies = "parity.replies"
    static let exchange = "parity.events"
    static let eventsQueue = "parity.seen"

    var id: String
    var ticks = 0

    struct Begin: Message { static let messageType = "parity.Begin"; var id: String }
    struct ByHeader: Message { static let messageType = "parity.ByHeader"; var note: String }
    struct Fanout: Message { static let messageType = "parity.Fanout"; var id: String }
    struct Tick: Message { static let messageType = "parity.Tick" }
    struct Command: Message { static let messageType = "parity.Command"; var id: String; var n: Int }
    struct Happened: Message { static let messageType = "parity.Happened"; var id: String }
    struct Answer: Message { static let messageType = "parity.Answer"; var id: String; var n: Int }
    struct Blob: Message { static let messageType = "parity.Blob"; var id: String; var size: Int }

    static func define(_ saga: inout SagaDefinition<ParitySaga>) {
        saga.startedBy(Begin.self, correlatedBy: \.id) { begin, context in
            try context.send(Command(id: begin.id, n: 1), to: outA)
            try context.send(Command(id: begin.id, n: 2), to: outA, correlationId: "explicit-corr",
                             replyTo: "elsewhere", headers: ["x-tenant": "t-1"])
            try context.publish(Happened(id: begin.id), to: exchange)
            try context.requestTimeout(after: .milliseconds(300), Tick())
            try context.replyToOriginator(Answer(id: begin.id, n: 0))
            return ParitySaga(id: begin.id)
        }
        saga.handlesTimeout(Tick.self) { state, _, context in
            state.ticks += 1
            try context.send(Command(id: state.id, n: 3), to: outA)
            try context.replyToOriginator(Answer(id: state.id, n: state.ticks))
            try context.markComplete()
        }
        // Correlated by a header a producer sets (the tenant of the message).
        saga.startedBy(ByHeader.self, correlatedBy: .custom("tenant header") { _, envelope in
            envelope.headers["tenant"]
        }) { _, context in
            ParitySaga(id: context.saga!.correlationId)
        }
        // One command under one explicit id to two queues.
        saga.startedBy(Fanout.self, correlatedBy: \.id) { fanout, context in
            try context.send(Command(id: fanout.id, n: 1), to: outA, messageId: "fan-\(fanout.id)")
            try context.send(Command(id: fanout.id, n: 1), to: outB, messageId: "fan-\(fanout.id)")
            return ParitySaga(id: fanout.id)
        }
    }

    static func defineBlob(_ saga: inout SagaDefinition<ParitySaga>) {
        // A command with a header of `size` bytes.
        saga.startedBy(Blob.self, correlatedBy: \.id) { blob, context in
            try context.send(Command(id: blob.id, n: 0), to: outA,
                             headers: ["blob": String(repeating: "b", count: blob.size)])
            return ParitySaga(id: blob.id)
        }
    }

    /// A saga that asks for a timeout of a type it has no route for; a stateless handler takes that type.
    static func defineStrayTimeout(_ saga: inout SagaDefinition<ParitySaga>) {
        saga.startedBy(Begin.self, correlatedBy: \.id) { begin, context in
            try context.requestTimeout(after: .milliseconds(100), Command(id: begin.id, n: 9))
            return ParitySaga(id: begin.id)
        }
    }

    static func registry() -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(ParitySaga.self)
        return registry
    }
}

/// What a receiver sees of a message: enough to compare the kit's `OutgoingMessage` with a delivery.
struct WireView: Hashable, CustomStringConvertible {
    var messageId: String
    var type: String
    var destination: String
    var correlationId: String?
    var replyTo: String?
    var headers: [String: String]
    var body: String

    init(_ message: OutgoingMessage) {
        messageId = message.messageId
        type = message.type
        destination = message.exchange.isEmpty ? "queue \(message.routingKey)" : "\(message.exchange)/\(message.routingKey)"
        correlationId = message.correlationId
        replyTo = message.replyTo
        headers = message.headers
        body = message.bodyText
    }

    init(_ delivery: AMQPDelivery) {
        messageId = delivery.properties.messageId ?? ""
        type = delivery.properties.type ?? ""
        destination = delivery.exchange.isEmpty ? "queue \(delivery.routingKey)" : "\(delivery.exchange)/\(delivery.routingKey)"
        correlationId = delivery.properties.correlationId
        replyTo = delivery.properties.replyTo
        headers = (delivery.properties.headers ?? [:]).compactMapValues(\.stringValue)
        body = String(decoding: delivery.message.body, as: UTF8.self)
    }

    var description: String {
        "\(type) [\(messageId)] to \(destination) corr=\(correlationId ?? "-") reply_to=\(replyTo ?? "-") \(headers) \(body)"
    }
}

@Suite("The test kit and the endpoint agree", .timeLimit(.minutes(6)))
struct KitParityTests {
    private static func harness() async throws -> EndpointHarness {
        let harness = try await EndpointHarness.make()
        for queue in [ParitySaga.queue, ParitySaga.outA, ParitySaga.outB, ParitySaga.replies, ParitySaga.eventsQueue] {
            try await harness.declareQueue(queue)
        }
        try await harness.connection.declareExchange(ExchangeDeclaration(name: ParitySaga.exchange, kind: .topic))
        try await harness.connection.bind(BindingDeclaration(source: ParitySaga.exchange,
                                                             destination: ParitySaga.eventsQueue, routingKey: "#"))
        return harness
    }

    @Test("sends, publishes, replies and a timeout's messages leave with the ids and properties the kit showed")
    func outgoingMessagesMatch() async throws {
        let host = SagaTestHost(registry: ParitySaga.registry(), endpointAddress: ParitySaga.queue)
        let started = try await host.deliver(ParitySaga.Begin(id: "p-1"), messageId: "begin-1",
                                             correlationId: "client-corr", replyTo: ParitySaga.replies)
        let fired = try await host.advanceTime(by: .milliseconds(300))
        let expected = (started.emitted + fired.emitted).map(WireView.init)
        #expect(expected.count == 6)

        let harness = try await Self.harness()
        let endpoint = harness.startEndpoint(ParitySaga.registry(), queues: [ParitySaga.queue], database: "parity")
        try await harness.send(ParitySaga.Begin(id: "p-1"), to: ParitySaga.queue, messageId: "begin-1",
                               correlationId: "client-corr", replyTo: ParitySaga.replies)
        let commands = try await harness.receive(from: ParitySaga.outA, count: 3)
        let replies = try await harness.receive(from: ParitySaga.replies, count: 2)
        let events = try await harness.receive(from: ParitySaga.eventsQueue, count: 1)
        let received = (commands + replies + events).map(WireView.init)
        #expect(Set(received) == Set(expected), "kit:\n\(expected.map(\.description).joined(separator: "\n"))")
        // Per destination, in the order the kit lists them.
        for destination in Set(expected.map(\.destination)) {
            #expect(received.filter { $0.destination == destination }.map(\.messageId)
                == expected.filter { $0.destination == destination }.map(\.messageId))
        }
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("one explicit message id sent to two queues reaches both, as the kit shows")
    func oneIdTwoQueues() async throws {
        let host = SagaTestHost(registry: ParitySaga.registry(), endpointAddress: ParitySaga.queue)
        let kit = try await host.deliver(ParitySaga.Fanout(id: "f-1"), messageId: "fanout-1")
        #expect(kit.sent.compactMap(\.queue) == [ParitySaga.outA, ParitySaga.outB])

        let harness = try await Self.harness()
        let endpoint = harness.startEndpoint(ParitySaga.registry(), queues: [ParitySaga.queue], database: "parity")
        try await harness.send(ParitySaga.Fanout(id: "f-1"), to: ParitySaga.queue, messageId: "fanout-1")
        let a = try await harness.receive(from: ParitySaga.outA, count: 1)
        let b = try await harness.receive(from: ParitySaga.outB, count: 1, timeout: .seconds(5))
        #expect(a.map(\.properties.messageId) == ["fan-f-1"])
        #expect(b.map(\.properties.messageId) == ["fan-f-1"])
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("a saga correlated by a header finds it when the producer sent it as a number")
    func numericHeaderCorrelates() async throws {
        let host = SagaTestHost(registry: ParitySaga.registry(), endpointAddress: ParitySaga.queue)
        let kit = try await host.deliver(ParitySaga.ByHeader(note: "n"), headers: ["tenant": "42"])
        #expect(kit.outcome(of: ParitySaga.self, correlationId: "42") == .started)

        let harness = try await Self.harness()
        let endpoint = harness.startEndpoint(ParitySaga.registry(), queues: [ParitySaga.queue], database: "parity")
        try await harness.sendRaw(try MessageCoding.encode(ParitySaga.ByHeader(note: "n")), properties: BasicProperties(
            contentType: "application/json", headers: ["tenant": .int32(42)], deliveryMode: .persistent,
            messageId: "by-header-1", type: ParitySaga.ByHeader.messageType), to: ParitySaga.queue)
        try await waitUntil(timeout: .seconds(20)) {
            let processed = try await harness.withStore("parity") { try $0.inboxContains(messageId: "by-header-1") }
            let errorQueued = try await harness.depth(ParitySaga.queue + ".error") > 0
            return processed || errorQueued
        }
        #expect(try await harness.state(ParitySaga.self, "42", in: "parity")?.id == "42")
        #expect(try await harness.depth(ParitySaga.queue + ".error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("a timeout of a type its saga has no route for is dead-lettered by the kit and error-queued by the endpoint")
    func timeoutWithoutRoute() async throws {
        var registry = HandlerRegistry()
        registry.register(ParitySaga.self, define: ParitySaga.defineStrayTimeout)
        registry.handle(ParitySaga.Command.self) { command, context in
            try context.send(command, to: ParitySaga.outB)
        }
        let host = SagaTestHost(registry: registry, endpointAddress: ParitySaga.queue)
        let started = try await host.deliver(ParitySaga.Begin(id: "s-1"), messageId: "stray-1")
        let timeoutId = try #require(started.timeoutsRequested.first?.timeoutId)
        let advanced = try await host.advanceTime(by: .milliseconds(100))
        #expect(advanced.deliveries.map(\.message.messageId) == [timeoutId])
        #expect(host.deadLetters.map(\.reason) == ["NoHandler: no saga '\(ParitySaga.sagaType)' that handles '\(ParitySaga.Command.messageType)' is registered"])
        advanced.expectNothingEmitted()

        let harness = try await Self.harness()
        let endpoint = harness.startEndpoint(registry, queues: [ParitySaga.queue], database: "parity")
        try await harness.send(ParitySaga.Begin(id: "s-1"), to: ParitySaga.queue, messageId: "stray-1")
        let copies = try await harness.errorMessages(of: ParitySaga.queue, count: 1)
        #expect(copies.map(\.properties.messageId) == [timeoutId])
        #expect(copies.first?.header("x-error-type") == "NoHandler")
        #expect(try await harness.depth(ParitySaga.outB) == 0, "the stateless handler does not take the timeout")
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("the kit refuses headers too large for a frame exactly where the endpoint starts refusing them")
    func outgoingLimitsAgree() async throws {
        var registry = HandlerRegistry()
        registry.register(ParitySaga.self, define: ParitySaga.defineBlob)
        func deliver(size: Int, frameMax: Int) async throws -> OutgoingMessage {
            let host = SagaTestHost(registry: registry, endpointAddress: ParitySaga.queue)
            host.frameMax = frameMax
            return try await host.deliver(ParitySaga.Blob(id: "b", size: size), messageId: "blob-1").sent[0]
        }
        // The endpoint's check, on the row it would store for the kit's message (`StoreWorker.processed`).
        func endpointAccepts(size: Int) async throws -> Bool {
            let message = try await deliver(size: size, frameMax: 0)
            let row = OutboxRecord(
                messageId: message.messageId, incomingMessageId: "blob-1", position: 0, exchange: message.exchange,
                routingKey: message.routingKey, mandatory: true, messageType: message.type,
                correlationId: message.correlationId, replyTo: message.replyTo, headers: message.headers,
                body: message.body, createdAt: Date())
            return (try? OutgoingLimits.check(row, frameMax: AMQPConfiguration.defaultFrameMax)) != nil
        }
        var (accepted, refused) = (100_000, 140_000)
        #expect(try await endpointAccepts(size: accepted))
        #expect(try await !endpointAccepts(size: refused))
        while refused - accepted > 1 {
            let middle = (accepted + refused) / 2
            if try await endpointAccepts(size: middle) { accepted = middle } else { refused = middle }
        }
        _ = try await deliver(size: accepted, frameMax: AMQPConfiguration.defaultFrameMax)
        await #expect(throws: SagaTestHostError.self) {
            try await deliver(size: refused, frameMax: AMQPConfiguration.defaultFrameMax)
        }
    }
}
