// Values AMQP cannot carry (short strings over 255 bytes: names, routing keys, properties, table keys)
// are refused before anything is sent, with .invalidArgument, and the connection stays as it was.
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Protocol limits")
struct ProtocolLimitsTests {
    static let tooLong = String(repeating: "x", count: 256)

    @Test("a publish with a too long routing key, message id or header key fails alone; the connection is fine")
    func publish() async throws {
        try await withConnection("limits-publish") { connection, scratch in
            let queue = scratch.queue("limits")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let outcomes = await connection.publish([
                .toQueue(queue, message("ok-1")),
                .toQueue(Self.tooLong, message("long-key")),
                .toQueue(queue, message(Self.tooLong)),
                .toQueue(queue, message("long-header", headers: ["nested": .table([Self.tooLong: true])])),
                .toQueue(queue, message("ok-2")),
            ])
            #expect(outcomes[0] == .confirmed)
            #expect(outcomes[4] == .confirmed)
            for outcome in outcomes[1...3] {
                guard case .failed(let error) = outcome else {
                    Issue.record("expected .failed(.invalidArgument), got \(outcome)")
                    continue
                }
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("256 bytes"))
            }
            #expect(await connection.isConnected)
            #expect(await connection.recoveryCount == 0)
            #expect(try await connection.checkQueue(queue).messageCount == 2)
        }
    }

    // Before, rabbitmq-c sent the method frame, then failed to encode the header frame: the connection was
    // dropped as lost (every unconfirmed publish with it), and a caller retrying met the same fate.
    @Test("a publish whose properties do not fit in one frame fails alone; one that just fits goes through")
    func propertiesLargerThanAFrame() async throws {
        try await withConnection("limits-frame") { connection, scratch in
            let queue = scratch.queue("limits-frame")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let frameMax = await connection.negotiatedFrameMax
            #expect(frameMax > 0)
            // Headers sized so that the properties take exactly what a frame holds, and one byte more.
            func sized(_ id: String, extra: Int) -> AMQPMessage {
                let empty = message(id, headers: ["big": .bytes(Data())])
                let room = frameMax - HeaderFrameSize.overhead - HeaderFrameSize.of(empty.properties)
                return message(id, headers: ["big": .bytes(Data(count: room + extra))])
            }
            let outcomes = await connection.publish([
                .toQueue(queue, message("ok-1")),
                .toQueue(queue, sized("just-fits", extra: 0)),
                .toQueue(queue, sized("one-over", extra: 1)),
                .toQueue(queue, message("huge", headers: ["big": .bytes(Data(count: 4 * frameMax))])),
                .toQueue(queue, message("ok-2")),
            ])
            #expect(outcomes[0] == .confirmed)
            #expect(outcomes[1] == .confirmed, "properties of exactly one frame's room are sent")
            #expect(outcomes[4] == .confirmed)
            for outcome in outcomes[2...3] {
                guard case .failed(let error) = outcome else {
                    Issue.record("expected .failed(.invalidArgument), got \(outcome)")
                    continue
                }
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("frame_max"), "\(error.message)")
            }
            #expect(await connection.isConnected)
            #expect(await connection.recoveryCount == 0)
            #expect(try await connection.checkQueue(queue).messageCount == 3)
        }
    }

    @Test("declaring, binding or consuming with a too long name throws .invalidArgument; the connection is fine")
    func topologyAndConsume() async throws {
        try await withConnection("limits-topology") { connection, scratch in
            let queue = scratch.queue("limits")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let failures: [AMQPError?] = [
                await amqpError { try await connection.declareQueue(QueueDeclaration(name: Self.tooLong)) },
                await amqpError { try await connection.declareExchange(ExchangeDeclaration(name: Self.tooLong, kind: .direct)) },
                await amqpError { try await connection.bind(BindingDeclaration(source: "amq.direct", destination: queue, routingKey: Self.tooLong)) },
                await amqpError { _ = try await connection.consume(queue: queue, consumerTag: Self.tooLong) },
                await amqpError { _ = try await connection.checkQueue(Self.tooLong) },
                await amqpError {
                    try await connection.declareQueue(QueueDeclaration(name: scratch.queue("args"), arguments: [Self.tooLong: 1]))
                },
            ]
            for failure in failures { #expect(failure?.code == .invalidArgument, "\(String(describing: failure))") }
            #expect(await connection.isConnected)
            #expect(await connection.recoveryCount == 0)
            try await connection.publish(.toQueue(queue, message("still fine")))
        }
    }
}
