// Values AMQP cannot carry (short strings over 255 bytes: names, routing keys, properties, table keys)
// are refused before anything is sent, with .invalidArgument, and the connection stays as it was.
import AMQPTransport
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
