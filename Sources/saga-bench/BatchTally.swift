// The batches an endpoint in the bench really ran, read from its metrics: the round lines report them
// instead of assuming every batch was full.
import CoreMetrics
import Synchronization

/// A metrics factory that keeps only the endpoint's batch-size recorder (`saga_batch_size`) and the
/// count of handlers run again in the transaction (`saga_handlers_rerun_total`); everything else goes
/// nowhere.
final class BatchTally: MetricsFactory {
    private struct Totals {
        var batches = 0
        var messages = 0
        var reruns = 0
    }

    private let totals = Mutex(Totals())

    /// Batches recorded so far, and the messages in them.
    var batches: (count: Int, messages: Int) { totals.withLock { ($0.batches, $0.messages) } }
    var reruns: Int { totals.withLock(\.reruns) }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        label == "saga_handlers_rerun_total" ? RerunCounter(tally: self) : NOOPMetricsHandler.instance
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        label == "saga_batch_size" ? BatchRecorder(tally: self) : NOOPMetricsHandler.instance
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { NOOPMetricsHandler.instance }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    fileprivate func batch(of size: Int) {
        totals.withLock { $0.batches += 1; $0.messages += size }
    }

    fileprivate func rerun(_ count: Int) { totals.withLock { $0.reruns += count } }

    private final class BatchRecorder: RecorderHandler {
        let tally: BatchTally
        init(tally: BatchTally) { self.tally = tally }
        func record(_ value: Int64) { tally.batch(of: Int(value)) }
        func record(_ value: Double) { tally.batch(of: Int(value)) }
    }

    private final class RerunCounter: CounterHandler {
        let tally: BatchTally
        init(tally: BatchTally) { self.tally = tally }
        func increment(by amount: Int64) { tally.rerun(Int(amount)) }
        func reset() {}
    }
}
