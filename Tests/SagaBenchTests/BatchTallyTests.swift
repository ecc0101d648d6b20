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

    @Test("the mean commit, publish-and-confirm and batch times come from the endpoint's timers")
    func meanStageTimes() {
        let tally = BatchTally()
        let metrics = EndpointMetrics(factory: tally)
        #expect(tally.meanMilliseconds(.commit) == nil)
        metrics.commitDuration.recordNanoseconds(4_000_000)
        metrics.commitDuration.recordNanoseconds(6_000_000)
        metrics.publishDuration.recordNanoseconds(12_000_000)
        metrics.batchDuration.recordNanoseconds(30_000_000)
        metrics.handlerDuration.recordNanoseconds(1_000_000_000)
        #expect(tally.meanMilliseconds(.commit) == 5)
        #expect(tally.meanMilliseconds(.publishConfirm) == 12)
        #expect(tally.meanMilliseconds(.batch) == 30)
        let result = RunResult(elapsed: .seconds(1), tally: tally)
        #expect(result.stageMilliseconds?.commit == 5)
        #expect(result.stageMilliseconds?.publishConfirm == 12)
    }
}
