// An exchange deleted, and a binding removed, through a connection that is lost (or down, a recovery
// under way) before the broker answers. Failed before: they stayed recorded, and recovery declared them
// again (the exchange was back, and the binding routed again).
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("An exchange deleted and a binding removed while their connection is lost", .timeLimit(.minutes(2)))
struct ExchangeDeleteAndUnbindDuringLossTests {
    @Test("recovery deletes the exchange and removes the binding rather than declare them again")
    func deleteAndUnbindDuringLoss() async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        defer { _ = try? TestBroker.deleteVhost(vhost.name) }
        let name = TestBroker.uniqueName("amqp-test-unbind-during-loss")
        // Recovery waits 5 s before it reconnects: the delete and the unbind fall in that gap.
        let connection = try await AMQPConnection.connect(
            url: vhost.url, connectionName: name,
            recovery: RecoveryPolicy(initialDelay: .seconds(5), maximumDelay: .seconds(5), jitter: 0), logger: quietLogger)
        let observer = try await AMQPConnection.connect(url: vhost.url, connectionName: TestBroker.uniqueName("amqp-test-observer"))
        try await connection.declareExchange(ExchangeDeclaration(name: "gone", kind: .fanout))
        try await connection.declareExchange(ExchangeDeclaration(name: "kept", kind: .direct))
        try await connection.declareQueue(QueueDeclaration(name: "readers"))
        let binding = BindingDeclaration(source: "kept", destination: "readers", routingKey: "k")
        try await connection.bind(binding)
        // Bound, so that an exchange the broker kept across the loss is not "unused".
        try await connection.bind(BindingDeclaration(source: "gone", destination: "readers", routingKey: ""))

        _ = try await runOnThread { try TestBroker.closeConnections(named: name, reason: "transport test") }
        await #expect(throws: AMQPError.self) { try await connection.deleteExchange("gone") }
        await #expect(throws: AMQPError.self) { try await connection.unbind(binding) }
        #expect(await connection.recoveryCount == 0, "deleted while the connection was lost")
        try await waitUntil(timeout: .seconds(60), message: "the connection recovered") {
            await connection.recoveryCount == 1
        }

        await #expect(throws: AMQPError.self, "deleted by recovery") { try await observer.checkExchange("gone") }
        let routed = await observer.publish([PublishRequest(exchange: "kept", routingKey: "k", mandatory: true,
                                                            message: AMQPMessage(body: Data("x".utf8)))])
        #expect(routed == [.returned(replyCode: 312, replyText: "NO_ROUTE")], "the binding was removed by recovery")
        #expect(await connection.unrestoredTopology.isEmpty)
        await observer.close()
        await connection.close()
    }
}
