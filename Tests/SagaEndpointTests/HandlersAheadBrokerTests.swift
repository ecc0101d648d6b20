import AMQPTransport
import BrokerTestSupport
import Foundation
import InMemoryTracing
import MetricsTestKit
import SagaEndpoint
import Sagas
import TestSagaSupport
import Testing

/// Under load the endpoint runs saga handlers ahead of the transaction while the previous batch commits.
/// A backlog of increments to a few counters makes every batch full and makes consecutive batches touch
/// the same instances, so handlers often read a state the running commit is about to change: every count
/// must still be exact, whether a message's result was applied or its handler ran again.
@Suite("Handlers ahead of the transaction, against the broker", .timeLimit(.minutes(6)))
struct HandlersAheadBrokerTests {
    @Test("a backlog of full batches over a few instances: every count exact, one version per increment")
    func backlogOverFewInstances() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("counters")
        let increments = 1200, counters = 3
        let requests = try (0..<increments).map { index in
            PublishRequest.toQueue("counters", AMQPMessage(
                body: try MessageCoding.encode(CounterSaga.Increment(counterId: "c-\(index % counters)")),
                properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent,
                                            messageId: "inc-\(index)", type: CounterSaga.Increment.messageType)))
        }
        #expect(await harness.connection.publish(requests).filter(\.isConfirmed).count == increments)

        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        let tracer = InMemoryTracer()
        // The file exists before the endpoint starts, so polling it below never races its creation.
        _ = try await harness.rowCount("ahead", "sagas")
        // Small batches: the first full one starts the handlers-ahead path. On a loaded machine the
        // consumer fills the work queue slowly and batches of 40 never came full (a CI run took the other
        // path for all 1,200 messages); batches of 10 still did.
        let endpoint = harness.startEndpoint(registry, queues: ["counters"], database: "ahead", metrics: metrics,
                                             tracer: tracer) {
            $0.batchSize = 10
            $0.prefetch = 120
        }
        try await waitUntil(timeout: .seconds(60), poll: .milliseconds(250)) {
            try await harness.rowCount("ahead", "inbox") == increments
        }
        await harness.stop(endpoint)

        for index in 0..<counters {
            let counter = try #require(try await harness.state(CounterSaga.self, "c-\(index)", in: "ahead"))
            #expect(counter.count == increments / counters, "counter c-\(index)")
        }
        let versions = try await harness.withStore("ahead") { store in
            try store.listSagas(type: CounterSaga.sagaType).map(\.version)
        }
        #expect(versions == Array(repeating: increments / counters, count: counters))
        #expect(try await harness.depth("counters") == 0)
        #expect(try await harness.depth("counters.error") == 0)
        // The path ran: handler spans marked as run ahead of the transaction (how many depends on how fast
        // the deliveries arrive, so ask only for one batch's worth).
        let batches = try metrics.expectRecorder("saga_batch_size").values
        let ahead = tracer.finishedSpans.filter { $0.attributes.get("saga.ahead_of_commit") == .bool(true) }
        #expect(ahead.count >= 10, "handler runs ahead: \(ahead.count); batch sizes: \(batches)")
        await harness.tearDown()
    }
}
