// An exchange or queue that another client declared, with bindings made through this connection, deleted
// through this connection. Failed before, when the loss cut the delete off: as the object was not declared
// through this connection, its bindings stayed recorded; the delete had reached the broker, so recovery's
// re-bind was refused (404) and retried for as long as the connection lived (`unrestoredTopology` never
// empty, a warning every 30 s), and once the other client declared the object again, the retry made the
// bindings the client had deleted again.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("An exchange or queue declared by another client, deleted through a connection that bound to it",
       .timeLimit(.minutes(2)))
struct UnownedDeleteDuringLossTests {
    @Test("cut off by the loss: recovery does not bind to it again, and its consumers resume")
    func deleteDuringLoss() async throws {
        try await withBoundToOthers("amqp-test-unowned-delete-during-loss") { connection, owner, name in
            // And one whose delete does not reach the broker.
            try await owner.declareExchange(ExchangeDeclaration(name: "unreached", kind: .fanout))
            try await connection.bind(BindingDeclaration(source: "unreached", destination: "readers", routingKey: ""))

            _ = try await runOnThread { try TestBroker.closeConnections(named: name, reason: "transport test") }
            // These deletes reach the broker (made by the owner here) but the connection loses the answers.
            try await owner.deleteExchange("shared")
            _ = try await owner.deleteQueue("inbox")
            for exchange in ["shared", "unreached"] {
                await #expect(throws: AMQPError.self) { try await connection.deleteExchange(exchange) }
            }
            await #expect(throws: AMQPError.self) { _ = try await connection.deleteQueue("inbox") }
            #expect(await connection.recoveryCount == 0, "deleted while the connection was lost")
            try await waitUntil(timeout: .seconds(60), message: "the connection recovered") {
                await connection.recoveryCount == 1
            }
            #expect(await connection.unrestoredTopology.isEmpty, "nothing bound to what the client deleted")
            // As for an exchange the connection declared: recovery finishes the delete, as the client asked.
            await #expect(throws: AMQPError.self, "deleted by recovery") { try await owner.checkExchange("unreached") }
        }
    }

    @Test("not cut off: recovery does not bind to it again")
    func deleteBeforeLoss() async throws {
        try await withBoundToOthers("amqp-test-unowned-delete") { connection, _, name in
            try await connection.deleteExchange("shared")
            _ = try await connection.deleteQueue("inbox")
            _ = try await runOnThread { try TestBroker.closeConnections(named: name, reason: "transport test") }
            try await waitUntil(timeout: .seconds(60), message: "the connection recovered") {
                await connection.recoveryCount == 1
            }
            #expect(await connection.unrestoredTopology.isEmpty, "nothing bound to what the client deleted")
        }
    }

    /// `owner` declares exchange `shared` and queue `inbox`; `connection` (recovering after 5 s) declares
    /// exchange `relay` and queue `readers`, binds `readers` and `relay` to `shared` and `inbox` to `relay`,
    /// and consumes `readers`. After `body` (which deletes `shared` and `inbox` and has the connection
    /// recover), the owner declares them again, as its own recovery would: the bindings must not come back,
    /// and the consumer must still receive.
    private func withBoundToOthers(
        _ prefix: String, _ body: (AMQPConnection, AMQPConnection, String) async throws -> Void
    ) async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        defer { _ = try? TestBroker.deleteVhost(vhost.name) }
        let name = TestBroker.uniqueName(prefix)
        let connection = try await AMQPConnection.connect(
            url: vhost.url, connectionName: name,
            recovery: RecoveryPolicy(initialDelay: .seconds(5), maximumDelay: .seconds(5), jitter: 0), logger: quietLogger)
        let owner = try await AMQPConnection.connect(url: vhost.url, connectionName: TestBroker.uniqueName("amqp-test-owner"))
        try await owner.declareExchange(ExchangeDeclaration(name: "shared", kind: .fanout))
        try await owner.declareQueue(QueueDeclaration(name: "inbox"))
        try await connection.declareExchange(ExchangeDeclaration(name: "relay", kind: .fanout))
        try await connection.declareQueue(QueueDeclaration(name: "readers"))
        try await connection.bind(BindingDeclaration(source: "shared", destination: "readers", routingKey: ""))
        try await connection.bind(BindingDeclaration(source: "shared", destination: "relay", destinationKind: .exchange,
                                                     routingKey: ""))
        try await connection.bind(BindingDeclaration(source: "relay", destination: "inbox", routingKey: ""))
        let inbox = Inbox(try await connection.consume(queue: "readers", prefetch: 1))

        try await body(connection, owner, name)

        try await owner.declareExchange(ExchangeDeclaration(name: "shared", kind: .fanout))
        try await owner.declareQueue(QueueDeclaration(name: "inbox"))
        // A retry of a refused declaration would have bound again by now.
        try await waitUntil(timeout: .seconds(60), message: "no declaration left to retry") {
            await connection.unrestoredTopology.isEmpty
        }
        try await owner.publish(PublishRequest(exchange: "", routingKey: "readers", message: message("direct")))
        #expect(try await inbox.next(timeout: .seconds(30)).properties.messageId == "direct", "the consumer resumed")
        for exchange in ["shared", "relay"] {
            let routed = await owner.publish([PublishRequest(exchange: exchange, routingKey: "", mandatory: true,
                                                             message: message("to-\(exchange)"))])
            #expect(routed == [.returned(replyCode: 312, replyText: "NO_ROUTE")], "nothing bound to '\(exchange)' any more")
        }
        #expect(await connection.recoveryCount == 1)
        await owner.close()
        await connection.close()
    }
}
