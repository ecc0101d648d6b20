// Recovery after a lost connection retries every failure, those the first connect reports at once too:
// an operator can fix a refused login or a deleted vhost without restarting the process (RabbitMQ's Java
// and .NET clients retry them too). But such a failure must be reported as what it is.
import AMQPTransport
import BrokerTestSupport
import Foundation
import LogTestSupport
import Testing

@Suite("Recovery the broker refuses", .timeLimit(.minutes(2)))
struct RefusedRecoveryTests {
    // Failed before: every failed reconnect was the same warning ("AMQP reconnect failed; retrying"), so a
    // recovery that can never succeed on its own (the vhost deleted: 530 at every attempt) read like a
    // broker slow to come back.
    @Test("a vhost deleted under a connection: each refused reconnect is an error saying so; the vhost back, it recovers")
    func deletedVhost() async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        defer { _ = try? TestBroker.deleteVhost(vhost.name) }
        let logs = CapturedLog()
        var configuration = try AMQPConfiguration(url: vhost.url)
        configuration.connectionName = TestBroker.uniqueName("amqp-test-refused-recovery")
        let connection = try await AMQPConnection.connect(
            configuration, recovery: RecoveryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(300)),
            logger: logs.logger(label: "amqp-test"))
        let queue = TestBroker.uniqueName("amqp-test-refused")
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: true))

        try await runOnThread { try TestBroker.deleteVhost(vhost.name) }
        let refusals = { logs.entries.filter { $0.message.contains("AMQP reconnect refused") } }
        try await waitUntil(timeout: .seconds(30), message: "refused reconnects logged as such:\n\(logs.tail(20))") {
            refusals().count >= 2
        }
        for entry in refusals() {
            #expect(entry.level == .error, "\(entry.line)")
            #expect(entry.metadata["amqp.retry_helps"] == "false", "\(entry.line)")
            #expect(entry.metadata["amqp.error_code"] == "authenticationFailed", "\(entry.line)")
            #expect(entry.metadata["error"]?.contains(vhost.name) == true, "\(entry.line)")
        }
        let retries = logs.entries.filter { $0.message.contains("AMQP reconnect failed") }
        #expect(retries.allSatisfy { $0.metadata["amqp.retry_helps"] == "true" }, "\(retries.map(\.line))")
        let cause = await connection.lastError
        #expect(cause?.code == .authenticationFailed, "\(String(describing: cause))")
        #expect(cause?.isTransient == false)
        #expect(await connection.recoveryCount == 0)

        // Still retrying: the vhost created again, the connection comes back and declares its queue again.
        try await runOnThread {
            try TestBroker.rabbitmqctl(["add_vhost", vhost.name])
            try TestBroker.rabbitmqctl(["set_permissions", "-p", vhost.name, "guest", ".*", ".*", ".*"])
        }
        try await waitUntil(timeout: .seconds(30), message: "recovery once the vhost is back") {
            await connection.recoveryCount == 1
        }
        #expect(try await connection.checkQueue(queue).messageCount == 0)
        await connection.close()
    }
}
