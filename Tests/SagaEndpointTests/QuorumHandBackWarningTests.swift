import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// A quorum input queue counts every delivery the endpoint hands back (immediate retries; before they were
/// kept in the process, transient failures and error-queue copies or outgoing messages the broker did not
/// confirm too), and past its
/// `delivery-limit` the broker drops the message without a word to the consumer. Failed before: nothing
/// in the log said so; with a limit of 3 and the error queue full (`max-length` 0, `reject-publish`, both
/// by policy) a failed message was gone from both queues, its last record a warning that it would be
/// redelivered. The endpoint cannot read the limit, so it now warns at each such hand-back, naming the
/// queue, the message and the count.
@Suite("Hand-backs to a quorum queue are reported", .timeLimit(.minutes(3)))
struct QuorumHandBackWarningTests {
    static let warning = "message handed back to a quorum queue"

    /// Sets an operator's policy on the harness's own vhost (never the shared node's `/`).
    func setPolicy(_ harness: EndpointHarness, _ name: String, pattern: String, _ definition: String) async throws {
        let vhost = harness.vhost
        _ = try await runOnThread {
            try TestBroker.rabbitmqctl(["set_policy", "-p", vhost, "--apply-to", "queues", name, pattern, definition])
        }
    }

    func startExploding(_ harness: EndpointHarness, queue: String, quorum: Bool, immediateRetries: Int,
                        log: LogCapture) async throws -> Task<Void, any Error> {
        try await harness.connection.declareQueue(QueueDeclaration(
            name: queue, arguments: quorum ? ["x-queue-type": .string("quorum")] : [:]))
        try await harness.connection.declareQueue(QueueDeclaration(name: queue + ".error"))
        let endpoint = harness.makeEndpoint(Explode.registry(calls: Tally()), queues: [queue], database: queue,
                                            logger: log.logger(label: "endpoint")) {
            $0.immediateRetries = immediateRetries
            $0.delayedRetries = []
        }
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        return running
    }

    // The rounds of an error-queue copy the full error queue refuses are no longer handed back (they are
    // processed again in process, `HeldDeliveries`, `QuorumDeliveryLimitTests`): nothing for the broker to
    // count, nothing to warn about. (This test asserted the warning before.)
    @Test("an error-queue copy the full error queue refuses: not handed back, so no warning; the copy goes through once there is room")
    func fullErrorQueue() async throws {
        let harness = try await EndpointHarness.make()
        try await setPolicy(harness, "full-errors", pattern: #"^qfull\.error$"#,
                            #"{"max-length":0,"overflow":"reject-publish"}"#)
        let log = LogCapture()
        let running = try await startExploding(harness, queue: "qfull", quorum: true, immediateRetries: 0, log: log)
        try await harness.send(Explode(note: "boom"), to: "qfull", messageId: "qfull-1")
        try await log.waitUntil(timeout: .seconds(20), message: "several refused copies") {
            // Throttled to one a second: two of them are several rounds.
            log.log.entries.filter { $0.message.hasPrefix("outgoing messages not confirmed") }.count >= 2
        }
        #expect(!log.log.entries.contains { $0.message.hasPrefix(Self.warning) }, "\(log.tail())")
        let vhost = harness.vhost
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "full-errors"]) }
        let copies = try await harness.errorMessages(of: "qfull", count: 1, timeout: .seconds(20))
        #expect(copies.first?.properties.messageId == "qfull-1")
        await harness.stop(running)
        await harness.tearDown()
    }

    @Test("immediate retries on a quorum queue are warned about")
    func immediateRetries() async throws {
        let harness = try await EndpointHarness.make()
        let log = LogCapture()
        let running = try await startExploding(harness, queue: "qretry", quorum: true, immediateRetries: 3, log: log)
        try await harness.send(Explode(note: "boom"), to: "qretry", messageId: "qretry-1")
        let copies = try await harness.errorMessages(of: "qretry", count: 1, timeout: .seconds(20))
        #expect(copies.first?.properties.messageId == "qretry-1")
        let warning = log.log.entries.first { $0.message.hasPrefix(Self.warning) }
        #expect(warning?.metadata["reason"] == "immediate retry", "\(log.tail())")
        #expect(warning?.metadata["queue"] == "qretry")
        await harness.stop(running)
        await harness.tearDown()
    }

    @Test("a classic queue has no delivery limit: no such warning")
    func classicQueue() async throws {
        let harness = try await EndpointHarness.make()
        let log = LogCapture()
        let running = try await startExploding(harness, queue: "qclassic", quorum: false, immediateRetries: 3, log: log)
        try await harness.send(Explode(note: "boom"), to: "qclassic", messageId: "qclassic-1")
        let copies = try await harness.errorMessages(of: "qclassic", count: 1, timeout: .seconds(20))
        #expect(copies.first?.properties.messageId == "qclassic-1")
        #expect(!log.log.entries.contains { $0.message.hasPrefix(Self.warning) })
        await harness.stop(running)
        await harness.tearDown()
    }
}
