import Metrics
@testable import saga_bench
@testable import SagaEndpoint
import Testing

/// The bench's round lines report the batches the endpoint really ran, read through `BatchTally`; it must
/// hear the endpoint's own metrics under their real labels.
@Suite("Bench batch tally")
struct BatchTallyTests {
    @Test("the endpoint's batch sizes and handler re-runs reach the tally; other metrics are ignored")
    func countsTheEndpointsBatches() {
        let tally = BatchTally()
        let metrics = EndpointMetrics(factory: tally)
        metrics.batchSize.record(100)
        metrics.batchSize.record(37)
        metrics.handlersRerun.increment(by: 2)
        metrics.processed.increment(by: 137)
        metrics.commitDuration.recordNanoseconds(5_000_000)
        #expect(tally.batches.count == 2)
        #expect(tally.batches.messages == 137)
        #expect(tally.reruns == 2)
    }
}
