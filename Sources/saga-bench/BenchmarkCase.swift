// What every benchmark case gets and returns. A case moves `messages` messages from queue A (pre-filled
// by the driver before each timed run) to queue B, and reports how long that took.
import AMQPTransport

/// The parameters of one timed run, the same for every case.
struct BenchmarkContext: Sendable {
    /// The broker (from `--url` or AMQP_URL).
    let configuration: AMQPConfiguration
    /// Pre-filled with `messages` messages before the run; empty afterwards.
    let queueA: String
    /// Empty before the run; holds `messages` messages afterwards.
    let queueB: String
    let messages: Int
    /// Deliveries taken (and published, confirmed and acknowledged) together.
    let batchSize: Int
    /// Unacknowledged deliveries in flight on the consumer.
    let prefetch: UInt16
}

/// One way of moving the messages, timed by the driver's alternating rounds.
protocol BenchmarkCase: Sendable {
    /// The name printed in the report.
    var name: String { get }
    /// Moves every message of queue A to queue B (consume, publish with confirms, acknowledge) and returns
    /// the time that took, excluding connecting and setting up.
    func run(_ context: BenchmarkContext) async throws -> RunResult
}

/// How one timed run went.
struct RunResult: Sendable {
    /// From the consumer's start to the last acknowledgement.
    var elapsed: Duration
    /// How many batches the messages were moved in (their average size shows how well batching works).
    var batches: Int
}

/// A benchmark run that went wrong (a nack, a return, a lost message).
struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
