// What recovery does when the broker refuses to declare again something the connection declared: before,
// the refusal was logged once and forgotten (the object stayed as the broker had it, and nobody could see
// from the connection that its topology was incomplete); now it is reported in `unrestoredTopology` and
// tried again with a growing delay until the broker accepts it, without closing the connection.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Topology declared again after recovery", .timeLimit(.minutes(3)))
struct TopologyRecoveryTests {
    static let fastRecovery = RecoveryPolicy(initialDelay: .milliseconds(50), maximumDelay: .seconds(1))

    @Test("a re-declaration refused with 406 is reported and retried; the connection and its consumers stay up")
    func refusedDeclarationIsReportedAndRetried() async throws {
        try await withVhostConnection("topology-recovery") { vhost, connection in
            try await connection.declareExchange(ExchangeDeclaration(name: "orders", kind: .topic))
            try await connection.declareQueue(QueueDeclaration(name: "orders.placed"))
            try await connection.bind(BindingDeclaration(source: "orders", destination: "orders.placed", routingKey: "placed.#"))
            try await connection.declareQueue(QueueDeclaration(name: "audit"))
            let inbox = Inbox(try await connection.consume(queue: "orders.placed"))

            // Someone declares `audit` again with other arguments while the connection is up (it does not notice).
            let other = try await AMQPConnection.connect(url: vhost.url, connectionName: "topology-recovery-other",
                                                         recovery: .disabled, logger: quietLogger)
            try await other.deleteQueue("audit")
            try await other.declareQueue(QueueDeclaration(name: "audit", arguments: ["x-max-length": .int64(5)]))
            await other.close()

            try await runOnThread { try TestBroker.closeConnections(vhost: vhost.name) }
            try await waitUntil(timeout: .seconds(30), message: "recovered") { await connection.recoveryCount == 1 }
            try await connection.waitUntilConnected()

            let refused = await connection.unrestoredTopology
            #expect(refused.count == 1, "\(refused)")
            #expect(refused.first?.declaration == .queue(QueueDeclaration(name: "audit")))
            #expect(refused.first?.error.replyCode == 406, "\(refused)")
            #expect("\(refused.first.map { "\($0)" } ?? "")".contains("queue 'audit'"))

            // The rest was declared again and the consumer resumed.
            try await connection.publish(PublishRequest(exchange: "orders", routingKey: "placed.1", message: message("after")))
            let delivery = try await inbox.next()
            #expect(delivery.properties.messageId == "after")
            try await connection.ack(delivery.tag)

            // No reconnect loop while the broker keeps refusing (retries run on the open connection).
            try await Task.sleep(for: .seconds(3))
            #expect(await connection.recoveryCount == 1)
            #expect(await connection.isConnected)
            #expect(await connection.unrestoredTopology.count == 1)

            // Once the conflicting queue is gone, a retry declares it as recorded (no arguments).
            let fixer = try await AMQPConnection.connect(url: vhost.url, connectionName: "topology-recovery-fixer",
                                                         recovery: .disabled, logger: quietLogger)
            try await fixer.deleteQueue("audit")
            try await waitUntil(timeout: .seconds(40), message: "declared again by a retry") {
                await connection.unrestoredTopology.isEmpty
            }
            // Declaring it with no arguments is a no-op now, so it has the recorded settings.
            try await fixer.declareQueue(QueueDeclaration(name: "audit"))
            await fixer.close()
            #expect(await connection.recoveryCount == 1)
        }
    }

    @Test("deleting a refused queue through the connection stops the retries of it")
    func deletingSettlesARefusal() async throws {
        try await withVhostConnection("topology-settle") { vhost, connection in
            try await connection.declareQueue(QueueDeclaration(name: "audit", durable: true))
            let other = try await AMQPConnection.connect(url: vhost.url, connectionName: "topology-settle-other",
                                                         recovery: .disabled, logger: quietLogger)
            try await other.deleteQueue("audit")
            try await other.declareQueue(QueueDeclaration(name: "audit", durable: false))
            await other.close()

            try await runOnThread { try TestBroker.closeConnections(vhost: vhost.name) }
            try await waitUntil(timeout: .seconds(30), message: "recovered with a refusal") {
                await connection.unrestoredTopology.count == 1
            }
            _ = try await connection.deleteQueue("audit")
            #expect(await connection.unrestoredTopology.isEmpty)
            // Not declared again behind the client's back.
            try await Task.sleep(for: .seconds(2))
            let missing = await amqpError { _ = try await connection.checkQueue("audit") }
            #expect(missing?.replyCode == 404)
        }
    }

    /// Runs `body` with a connection (quick to recover) to a vhost of its own, closed and deleted afterwards.
    private func withVhostConnection(
        _ name: String, _ body: ((name: String, url: String), AMQPConnection) async throws -> Void
    ) async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        let connection: AMQPConnection
        do {
            connection = try await AMQPConnection.connect(url: vhost.url, connectionName: name,
                                                          recovery: Self.fastRecovery, logger: quietLogger)
        } catch {
            _ = try? await runOnThread { try TestBroker.deleteVhost(vhost.name) }
            throw error
        }
        do {
            try await body(vhost, connection)
        } catch {
            await connection.close()
            _ = try? await runOnThread { try TestBroker.deleteVhost(vhost.name) }
            throw error
        }
        await connection.close()
        _ = try? await runOnThread { try TestBroker.deleteVhost(vhost.name) }
    }
}
