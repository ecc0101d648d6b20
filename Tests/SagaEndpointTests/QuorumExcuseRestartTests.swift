import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import Testing

/// The rounds of an unconfirmed error-queue copy are excused from the poison count in memory
/// (`TransientRequeues`). Failed before: on a quorum queue the endpoint took the broker's `x-delivery-count`,
/// which keeps every one of those rounds, so the next process (a deploy, a second endpoint on the queue)
/// took them all for deliveries that may have crashed it, and the message went to the error queue as a
/// PoisonMessage, its handler's error gone. Redeliveries are now counted in SQLite on every queue type.
@Suite("Excused rounds on a quorum queue across a restart", .timeLimit(.minutes(3)))
struct QuorumExcuseRestartTests {
    @Test("a restart after rounds of an unconfirmed copy does not make a quorum queue's message a poison message")
    func restartKeepsHandlerError() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareQueue(QueueDeclaration(
            name: "qbrittle", arguments: ["x-queue-type": .string("quorum")]))
        func start(_ metrics: TestMetrics) async throws -> Task<Void, any Error> {
            let endpoint = harness.makeEndpoint(Explode.registry(calls: Tally()), queues: ["qbrittle"],
                                                database: "qbrittle", metrics: metrics) {
                $0.immediateRetries = 0
                $0.delayedRetries = []
                $0.maxDeliveries = 3
            }
            let running = Task { try await endpoint.run() }
            try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
            return running
        }
        let metrics = TestMetrics()
        var running = try await start(metrics)
        _ = try await harness.connection.deleteQueue("qbrittle.error")
        try await harness.send(Explode(note: "boom"), to: "qbrittle", messageId: "qbrittle-1")
        try await waitUntil(timeout: .seconds(20), message: "the copy came back unconfirmed five times") {
            ((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0) >= 5
        }
        // A deploy: the held delivery is handed back at the stop.
        await harness.stop(running)
        try await harness.connection.declareQueue(QueueDeclaration(name: "qbrittle.error"))
        running = try await start(TestMetrics())
        let copy = try #require(try await harness.errorMessages(of: "qbrittle", count: 1, timeout: .seconds(20)).first)
        #expect(copy.properties.headers?["x-error-type"] != "PoisonMessage", "\(copy.properties.headers ?? [:])")
        #expect(copy.header("x-error-reason")?.contains("exploded on purpose") == true,
                "\(copy.properties.headers ?? [:])")
        await harness.stop(running)
        await harness.tearDown()
    }
}
