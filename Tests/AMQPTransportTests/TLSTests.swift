// TLS against a node of the test's own with a TLS listener and throwaway certificates (TLSFixture): peer
// verification on, with and without the CA, and with a client certificate. Never skipped: when openssl or
// the node is missing, the test fails.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("TLS")
struct TLSTests {
    @Test("amqps with peer verification: round trip with the CA, a clear error without it, client certificates")
    func tls() async throws {
        let fixture = try await runOnThread { try TLSFixture.make() }
        defer { fixture.remove() }
        let node = try await runOnThread { try DedicatedBrokerNode.start(tls: fixture) }
        defer { node.shutdown() }
        let base = try #require(node.tlsURL)

        // 1. Verification on, trusting the fixture's CA: a full publish/consume round trip.
        let verified = try await AMQPConnection.connect(url: "\(base)?cacertfile=\(fixture.caCert)", connectionName: "tls-verified")
        #expect(verified.configuration.tls?.verifyPeer == true)
        #expect(verified.configuration.tls?.verifyHostname == true)
        let queue = TestBroker.uniqueName("amqp-test-tls")
        try await verified.declareQueue(QueueDeclaration(name: queue, durable: false))
        let body = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0) })  // spans several frames and TLS records
        try await verified.publish(.toQueue(queue, AMQPMessage(body: body, properties: BasicProperties(messageId: "tls"))))
        let consumer = try await verified.consume(queue: queue)
        let delivery = try await Inbox(consumer).next()
        #expect(delivery.message.body == body)
        try await verified.ack(delivery.tag)
        try await consumer.cancel()
        try await verified.deleteQueue(queue)
        let peer = try await runOnThread {
            try node.rabbitmqctl(["-q", "list_connections", "--no-table-headers", "ssl", "peer_cert_subject", "client_properties"])
        }
        let verifiedLine = peer.split(separator: "\n").first { $0.contains("\"tls-verified\"") }
        #expect(verifiedLine?.hasPrefix("true") == true, "the broker sees a TLS connection: \(peer)")
        await verified.close()

        // 2. Verification on without the CA: the handshake fails, and the error says why.
        let error = await amqpError {
            _ = try await AMQPConnection.connect(url: base, connectionName: "tls-no-ca", recovery: .disabled, logger: quietLogger)
        }
        #expect(error?.code == .tlsVerificationFailed)
        let text = "\(String(describing: error))"
        #expect(text.contains("TLS"), "\(text)")
        #expect(text.contains("certificate"), "\(text)")
        #expect(text.contains("cacertfile"), "names the fix: \(text)")
        // A setting to fix, not a broker to wait for: connectRetrying stops at once. Failed before: the
        // failure was a transient .connectFailed, retried for ever.
        let retried = await amqpError {
            _ = try await withTimeLimit(.seconds(10), "connectRetrying without the CA") {
                try await AMQPConnection.connectRetrying(
                    AMQPConfiguration(url: base),
                    recovery: RecoveryPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50)),
                    logger: quietLogger)
            }
        }
        #expect(retried?.code == .tlsVerificationFailed, "\(String(describing: retried))")

        // 3. Verification off (throwaway set-ups): connects without the CA.
        let unverified = try await AMQPConnection.connect(url: "\(base)?verify=verify_none", connectionName: "tls-unverified")
        #expect(await unverified.isConnected)
        await unverified.close()

        // 4. A client certificate: the broker sees its subject.
        let withCertificate = try await AMQPConnection.connect(
            url: "\(base)?cacertfile=\(fixture.caCert)&certfile=\(fixture.clientCert)&keyfile=\(fixture.keyFile)",
            connectionName: "tls-client-cert")
        let subjects = try await runOnThread {
            try node.rabbitmqctl(["-q", "list_connections", "--no-table-headers", "peer_cert_subject", "client_properties"])
        }
        let line = subjects.split(separator: "\n").first { $0.contains("\"tls-client-cert\"") }
        #expect(line?.contains("CN=saga-test-client") == true, "\(subjects)")
        await withCertificate.close()

        // 5. A client key file that does not exist: a configuration error naming the file.
        let badKey = await amqpError {
            _ = try await AMQPConnection.connect(
                url: "\(base)?cacertfile=\(fixture.caCert)&certfile=\(fixture.clientCert)&keyfile=/nonexistent/key.pem",
                logger: quietLogger)
        }
        #expect(badKey?.code == .invalidConfiguration)
        #expect(badKey?.message.contains("/nonexistent/key.pem") == true)
    }
}

extension TLSFixture {
    var keyFile: String { clientKey }
}
