import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import Sagas
import TestSagaSupport
import Testing

/// `saga_publish_confirm_duration_seconds`: the latency of a batch's publish and confirm round trip.
@Suite("Publish confirm timer", .timeLimit(.minutes(6)))
struct PublishConfirmTimerTests {
    // Failed before: every batch recorded a sample, also one with nothing to publish, which waits for no
    // broker; a saga that emits nothing (or a quiet stretch of duplicates) filled the histogram with
    // near-zero samples, hiding a slow broker behind a low mean and median.
    @Test("a batch that publishes nothing records no confirm latency")
    func onlyBatchesThatPublish() async throws {
        let harness = try await EndpointHarness.make()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(registry, queues: ["counters"], database: "confirm-timer", metrics: metrics)
        for index in 0..<5 {
            try await harness.send(CounterSaga.Increment(counterId: "c-timer"), to: "counters", messageId: "timer-\(index)")
        }
        try await waitUntil(timeout: .seconds(20)) {
            try await harness.state(CounterSaga.self, "c-timer", in: "confirm-timer")?.count == 5
        }
        // A batch's duration is recorded after its acks, so after its commit made the state visible: waited
        // for (a loaded CI run once looked before the sample was in).
        try await waitUntil(timeout: .seconds(20)) {
            ((try? metrics.expectTimer("saga_batch_duration_seconds").values.count) ?? 0) >= 1
        }
        let samples = (try? metrics.expectTimer("saga_publish_confirm_duration_seconds").values) ?? []
        #expect(samples.isEmpty, "\(samples.count) confirm latency samples for batches that published nothing")
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
