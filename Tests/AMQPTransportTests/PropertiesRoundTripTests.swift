// Every basic property and every field-table kind survive a trip through RabbitMQ, both when the broker
// forwards the message as published and when it re-encodes the headers (dead-lettering adds x-death).
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Basic properties and header field kinds round-trip through the broker")
struct PropertiesRoundTripTests {
    /// One header of every kind, with values at the edges of their ranges.
    static let everyKind: FieldTable = [
        "bool": .bool(true),
        "int8": .int8(-128),
        "uint8": .uint8(255),
        "int16": .int16(-32768),
        "uint16": .uint16(65535),
        "int32": .int32(-2_147_483_648),
        "uint32": .uint32(4_294_967_295),
        "int64": .int64(Int64.min),
        "uint64": .uint64(42),
        "uint64-large": .uint64(UInt64.max - 1),
        "float": .float(3.25),
        "double": .double(-1.0e300),
        "decimal": .decimal(scale: 3, value: 1_234_567),
        "string": .string("héllo, wörld ✓"),
        "empty-string": .string(""),
        "bytes": .bytes(Data([0, 1, 2, 254, 255])),
        "timestamp": .timestamp(1_700_000_000),
        "table": .table(["inner": .int32(1), "deeper": .table(["x": .string("y")])]),
        "array": .array([.int32(1), .string("two"), .array([.bool(false), .void]), .table(["k": .double(0.5)])]),
        "empty-array": .array([]),
        "void": .void,
    ]

    static let everyProperty = BasicProperties(
        contentType: "application/json", contentEncoding: "identity", headers: everyKind,
        deliveryMode: .persistent, priority: 7, correlationId: "corr-1", replyTo: "reply-queue",
        expiration: "600000", messageId: "msg-1", timestamp: 1_700_000_123, type: "transfer.requested",
        userId: "guest", appId: "transport-tests", clusterId: "cluster-a")

    @Test("every basic property and header kind comes back exactly as published")
    func directRoundTrip() async throws {
        try await withConnection("properties") { connection, scratch in
            let queue = scratch.queue("properties")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let sent = AMQPMessage(body: Data("{}".utf8), properties: Self.everyProperty)
            try await connection.publish(.toQueue(queue, sent))

            let consumer = try await connection.consume(queue: queue)
            let delivery = try await Inbox(consumer).next()
            #expect(delivery.message == sent)
            #expect(delivery.properties.headers == Self.everyKind)
            #expect(delivery.routingKey == queue)
            #expect(delivery.exchange == "")
            #expect(!delivery.redelivered)
            try await connection.ack(delivery.tag)
            try await consumer.cancel()
        }
    }

    @Test("a message without properties comes back without any")
    func noProperties() async throws {
        try await withConnection("no-properties") { connection, scratch in
            let queue = scratch.queue("no-properties")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, AMQPMessage(body: Data())))
            let consumer = try await connection.consume(queue: queue)
            let delivery = try await Inbox(consumer).next()
            #expect(delivery.properties == BasicProperties())
            #expect(delivery.message.body.isEmpty)
            try await connection.ack(delivery.tag)
            try await consumer.cancel()
        }
    }

    @Test("headers re-encoded by the broker keep every kind except uint64, which becomes int64")
    func reencodedByTheBroker() async throws {
        try await withConnection("reencoded") { connection, scratch in
            let (queue, deadLetters) = try await declareDeadLettering(connection, scratch)
            try await connection.publish(.toQueue(queue, AMQPMessage(body: Data("x".utf8), properties: Self.everyProperty)))
            let consumer = try await connection.consume(queue: queue)
            let first = try await Inbox(consumer).next()
            try await connection.reject(first.tag, requeue: false)
            try await consumer.cancel()

            let dlq = try await connection.consume(queue: deadLetters)
            let deadLettered = try await Inbox(dlq).next()
            var headers = try #require(deadLettered.properties.headers)
            #expect(headers.removeValue(forKey: "x-death") != nil, "dead-lettering adds x-death")
            for key in ["x-first-death-reason", "x-first-death-queue", "x-first-death-exchange"] {
                #expect(headers.removeValue(forKey: key) != nil, "dead-lettering adds \(key)")
            }
            // Documented on FieldValue.uint64: RabbitMQ re-encodes 'L' as a signed 64-bit integer.
            var expected = Self.everyKind
            expected["uint64"] = .int64(42)
            expected["uint64-large"] = .int64(Int64(bitPattern: UInt64.max - 1))
            #expect(headers == expected)
            #expect(headers["uint64"]?.intValue == 42)
            try await connection.ack(deadLettered.tag)
            try await dlq.cancel()
        }
    }

    @Test("a headers exchange matches on every kind in its binding arguments")
    func headersExchangeBindings() async throws {
        try await withConnection("headers-exchange") { connection, scratch in
            let exchange = scratch.exchange("headers")
            let queue = scratch.queue("headers")
            try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .headers, durable: false))
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            var arguments = Self.everyKind
            arguments["x-match"] = "all"
            try await connection.bind(BindingDeclaration(source: exchange, destination: queue, arguments: arguments))
            let matching = AMQPMessage(body: Data(), properties: BasicProperties(headers: Self.everyKind))
            var other = Self.everyKind
            other["uint16"] = .uint16(1)
            let different = AMQPMessage(body: Data(), properties: BasicProperties(headers: other))
            let outcomes = await connection.publish([
                PublishRequest(exchange: exchange, routingKey: "", message: matching),
                PublishRequest(exchange: exchange, routingKey: "", message: different),
            ])
            #expect(outcomes == [.confirmed, .returned(replyCode: 312, replyText: "NO_ROUTE")])
        }
    }

    /// A queue dead-lettering to a fanout exchange bound to a second queue.
    private func declareDeadLettering(_ connection: AMQPConnection, _ scratch: Scratch) async throws
        -> (queue: String, deadLetters: String)
    {
        let exchange = scratch.exchange("dlx")
        let deadLetters = scratch.queue("dead-letters")
        let queue = scratch.queue("work")
        try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .fanout, durable: false))
        try await connection.declareQueue(QueueDeclaration(name: deadLetters, durable: false))
        try await connection.bind(BindingDeclaration(source: exchange, destination: deadLetters))
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: false).deadLettering(to: exchange))
        return (queue, deadLetters)
    }
}
