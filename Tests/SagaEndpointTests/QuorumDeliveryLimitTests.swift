import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// A quorum queue counts every delivery handed back to it (basic.nack with requeue), and past its
/// `delivery-limit` (RabbitMQ 4 gives every quorum queue 20) drops the message, or dead-letters it, without
/// a word to the consumer. Failed before: a message retried for a transient reason (a locked database) or
/// because its error-queue copy was not confirmed (a full error queue) was handed back at every round, and
/// with a limit of 2 it was gone from both queues after three rounds. Now such deliveries are kept in the
/// process, unacknowledged, and processed again from the endpoint's intake: the broker counts nothing.
@Suite("A quorum queue's delivery-limit and the messages the endpoint retries", .timeLimit(.minutes(3)))
struct QuorumDeliveryLimitTests {
    /// A quorum queue whose delivery-limit is 2: the third hand-back drops the message.
    func declareLimitedQuorumQueue(_ harness: EndpointHarness, _ queue: String) async throws {
        try await harness.connection.declareQueue(QueueDeclaration(name: queue, arguments: [
            "x-queue-type": .string("quorum"), "x-delivery-limit": .int64(2)]))
    }

    @Test("a message retried while the database is locked for many rounds is processed once the lock goes, exactly once")
    func lockedDatabase() async throws {
        let harness = try await EndpointHarness.make()
        try await declareLimitedQuorumQueue(harness, "qlocked")
        try await harness.connection.declareQueue(QueueDeclaration(name: "qlocked.error"))
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        _ = try await harness.rowCount("qlocked", "sagas")  // the file and schema, for the lock below
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["qlocked"], database: "qlocked", metrics: metrics,
                                            logger: log.logger(label: "endpoint")) {
            $0.databaseBusyTimeout = .milliseconds(200)
        }
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        let lock = harness.holdWriteLock(on: "qlocked", atMost: 60)
        try await Task.sleep(for: .milliseconds(200))
        try await harness.send(CounterSaga.Increment(counterId: "c-quorum"), to: "qlocked", messageId: "qlocked-1")
        // Rounds of a busy timeout (200 ms) and the growing pause: many more than the limit's two hand-backs.
        // (Before the fix there were no more rounds once the broker had dropped the message: not awaited.)
        try? await waitUntil(timeout: .seconds(20)) {
            (try? metrics.expectCounter("saga_messages_retried_total").totalValue) ?? 0 >= 6
        }
        try await lock.release()

        try await log.waitUntil(timeout: .seconds(30), message: "the increment processed once the lock is gone") {
            (try? await harness.state(CounterSaga.self, "c-quorum", in: "qlocked"))?.count == 1
        }
        try await waitUntil(timeout: .seconds(30), message: "the delivery acknowledged") {
            try await harness.depth("qlocked") == 0
        }
        #expect(!log.log.entries.contains { $0.message.hasPrefix("message handed back to a quorum queue") })
        await harness.stop(running)
        // Nothing left unacknowledged to come back, and processed once.
        #expect(try await harness.depth("qlocked") == 0)
        #expect(try await harness.state(CounterSaga.self, "c-quorum", in: "qlocked")?.count == 1)
        await harness.tearDown()
    }

    @Test("a failed message whose error queue is full for many rounds lands there once it has room, exactly once")
    func fullErrorQueue() async throws {
        let harness = try await EndpointHarness.make()
        try await declareLimitedQuorumQueue(harness, "qfull")
        try await harness.connection.declareQueue(QueueDeclaration(name: "qfull.error"))
        let vhost = harness.vhost
        _ = try await runOnThread {
            try TestBroker.rabbitmqctl(["set_policy", "-p", vhost, "--apply-to", "queues", "full-errors",
                                        #"^qfull\.error$"#, #"{"max-length":0,"overflow":"reject-publish"}"#])
        }
        let runs = Tally()
        let log = LogCapture()
        let metrics = TestMetrics()
        let endpoint = harness.makeEndpoint(Explode.registry(calls: runs), queues: ["qfull"], database: "qfull",
                                            metrics: metrics, logger: log.logger(label: "endpoint")) {
            $0.immediateRetries = 0
            $0.delayedRetries = []
        }
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }
        try await harness.send(Explode(note: "boom"), to: "qfull", messageId: "qfull-1")
        // Each round's copy is refused (0.1, 0.2, 0.4, 0.8, 1.6 s apart): many more than the limit's two
        // hand-backs. (Before the fix there were no more rounds once the broker had dropped the message.)
        try? await waitUntil(timeout: .seconds(20)) { runs.count >= 6 }
        #expect(try await harness.depth("qfull.error") == 0)

        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "full-errors"]) }
        try await waitUntil(timeout: .seconds(30), message: "the copy in the error queue once it has room") {
            try await harness.depth("qfull.error") >= 1
        }
        try await waitUntil(timeout: .seconds(30), message: "the delivery acknowledged once its copy was confirmed") {
            try await harness.depth("qfull") == 0
        }
        #expect(!log.log.entries.contains { $0.message.hasPrefix("message handed back to a quorum queue") })
        await harness.stop(running)
        #expect(try await harness.depth("qfull") == 0)
        let copies = try await harness.errorMessages(of: "qfull", count: 1, timeout: .seconds(20))
        #expect(copies.map(\.properties.messageId) == ["qfull-1"])
        #expect(try await harness.depth("qfull.error") == 0, "one copy, not more")
        await harness.tearDown()
    }
}

/// Immediate retries are processed again in process too, as MassTransit retries: not handed back, so not
/// counted by a quorum queue. Failed before: a message whose handler failed with 3 immediate retries on a
/// quorum queue with a limit of 2 was dropped by the broker at its third hand-back, before its error copy
/// (the endpoint only warned that it was handing it back).
@Suite("Immediate retries and a quorum queue's delivery-limit", .timeLimit(.minutes(3)))
struct QuorumImmediateRetryTests {
    @Test("a handler failing through 3 immediate retries against a limit of 2: the copy lands in the error queue, once")
    func immediateRetries() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareQueue(QueueDeclaration(name: "qretry", arguments: [
            "x-queue-type": .string("quorum"), "x-delivery-limit": .int64(2)]))
        try await harness.connection.declareQueue(QueueDeclaration(name: "qretry.error"))
        let runs = Tally()
        let endpoint = harness.startEndpoint(Explode.registry(calls: runs), queues: ["qretry"], database: "qretry") {
            $0.immediateRetries = 3
            $0.delayedRetries = []
        }
        try await harness.send(Explode(note: "boom"), to: "qretry", messageId: "qretry-1")
        let copies = try await harness.errorMessages(of: "qretry", count: 1, timeout: .seconds(30))
        #expect(copies.map(\.properties.messageId) == ["qretry-1"])
        #expect(copies.first?.intHeader("x-attempts") == 4, "\(copies.first?.properties.headers ?? [:])")
        #expect(runs.count == 4, "the first attempt and 3 immediate retries")
        try await waitUntil(timeout: .seconds(30), message: "the delivery acknowledged") {
            try await harness.depth("qretry") == 0
        }
        await harness.stop(endpoint)
        #expect(try await harness.depth("qretry") == 0)
        #expect(try await harness.depth("qretry.error") == 0, "one copy, not more")
        await harness.tearDown()
    }
}
