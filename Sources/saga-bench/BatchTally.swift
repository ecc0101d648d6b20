// The batches an endpoint in the bench really ran, read from its metrics: the round lines report them
// instead of assuming every batch was full, and where a batch's time went (its commit, the publish and
// confirm round trip, start to acknowledgement).
import CoreMetrics
import Synchronization

/// One thing the endpoint recorded during a latency run, when it happened (`BatchTally(timeline:)`).
struct TimelineEvent: Sendable {
    var at: ContinuousClock.Instant
    /// `batch_size`, or a stage's label (its duration in milliseconds).
    var kind: String
    var value: Double
}

/// A metrics factory that keeps only the endpoint's batch-size recorder (`saga_batch_size`), the count
/// of handlers run again in the transaction (`saga_handlers_rerun_total`) and the sums of three batch
/// timers; everything else goes nowhere.
final class BatchTally: MetricsFactory {
    /// The timers whose sums are kept, by label.
    enum Stage: String {
        case commit = "saga_commit_duration_seconds"
        case publishConfirm = "saga_publish_confirm_duration_seconds"
        case batch = "saga_batch_duration_seconds"
    }

    private struct Totals {
        var batches = 0
        var messages = 0
        /// Batches that reached `fullSize`.
        var full = 0
        var reruns = 0
        var nanoseconds: [Stage: (count: Int, sum: Int64)] = [:]
    }

    private let totals = Mutex(Totals())
    /// The endpoint's batch limit: batches of this size are counted as full (0: none is).
    let fullSize: Int
    /// Every batch size and stage duration with its time, kept only when asked for (a latency run):
    /// where the slow messages came from (a long commit, or none) is read off these.
    private let events = Mutex<[TimelineEvent]>([])
    private let keepsTimeline: Bool

    init(fullSize: Int = 0, timeline: Bool = false) {
        self.fullSize = fullSize
        self.keepsTimeline = timeline
    }

    /// What was recorded, in order (empty unless made with `timeline: true`).
    var timeline: [TimelineEvent] { events.withLock { $0 } }

    /// Batches recorded so far, and the messages in them.
    var batches: (count: Int, messages: Int) { totals.withLock { ($0.batches, $0.messages) } }
    var reruns: Int { totals.withLock(\.reruns) }
    /// Batches that were full (as large as `fullSize`).
    var fullBatches: Int { totals.withLock(\.full) }

    /// The mean of `stage`'s recorded durations in milliseconds; nil when none was recorded.
    func meanMilliseconds(_ stage: Stage) -> Double? {
        totals.withLock { totals in
            guard let (count, sum) = totals.nanoseconds[stage], count > 0 else { return nil }
            return Double(sum) / Double(count) / 1e6
        }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        label == "saga_handlers_rerun_total" ? RerunCounter(tally: self) : NOOPMetricsHandler.instance
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        label == "saga_batch_size" ? BatchRecorder(tally: self) : NOOPMetricsHandler.instance
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Stage(rawValue: label).map { StageTimer(tally: self, stage: $0) } ?? NOOPMetricsHandler.instance
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private func note(_ kind: String, _ value: Double) {
        guard keepsTimeline else { return }
        let now = ContinuousClock.now
        events.withLock { $0.append(TimelineEvent(at: now, kind: kind, value: value)) }
    }

    fileprivate func batch(of size: Int) {
        note("batch_size", Double(size))
        let full = fullSize > 0 && size >= fullSize
        totals.withLock { totals in
            totals.batches += 1
            totals.messages += size
            if full { totals.full += 1 }
        }
    }

    fileprivate func rerun(_ count: Int) { totals.withLock { $0.reruns += count } }

    fileprivate func record(_ stage: Stage, nanoseconds: Int64) {
        note(stage.rawValue, Double(nanoseconds) / 1e6)
        totals.withLock { totals in
            let (count, sum) = totals.nanoseconds[stage] ?? (0, 0)
            totals.nanoseconds[stage] = (count + 1, sum + nanoseconds)
        }
    }

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

    private final class StageTimer: TimerHandler {
        let tally: BatchTally
        let stage: Stage
        init(tally: BatchTally, stage: Stage) { (self.tally, self.stage) = (tally, stage) }
        func recordNanoseconds(_ duration: Int64) { tally.record(stage, nanoseconds: duration) }
    }
}
