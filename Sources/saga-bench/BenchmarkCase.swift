// What every benchmark case gets and returns. The pipe cases move `messages` messages from queue A (filled
// by `prepare` before each timed run) to queue B; the money-transfer cases fill and check their own queues.
import AMQPTransport
import Foundation

/// The parameters of one timed run, the same for every case.
struct BenchmarkContext: Sendable {
    /// The broker (from `--url` or AMQP_URL), pointing at the bench's own vhost when it made one.
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
    /// Body size of the pipe cases' messages.
    let bodySize: Int
    /// Whether the reference app's fixed queue names (`transfers`, `bank`, `transfers.events`) are free
    /// to declare, purge and delete here (a vhost of the bench's own, or one checked to be unused).
    let ownsTransferTopology: Bool
    /// The endpoints' `durableCommits` (false: `--relaxed-commits`).
    var durableCommits = true
}

/// One way of moving the messages, timed by the driver's alternating rounds.
protocol BenchmarkCase: Sendable {
    /// The name printed in the report.
    var name: String { get }
    /// Once before the first round (not timed): e.g. pre-populating a store.
    func setUp(_ context: BenchmarkContext) async throws
    /// Before every timed run (not timed, not in the CPU figures): fills the input queue.
    func prepare(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws
    /// The timed part: returns the time the work took, excluding connecting and setting up.
    func run(_ context: BenchmarkContext) async throws -> RunResult
    /// After every timed run: throws unless every message arrived where it should.
    func verify(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws
    /// Once after the last round.
    func tearDown(_ context: BenchmarkContext) async
}

/// How one timed run went.
struct RunResult: Sendable {
    /// From the consumer's start to the last acknowledgement (or the last output seen).
    var elapsed: Duration
    /// How many batches the messages were moved in (their average size shows how well batching works).
    var batches: Int
    /// Messages handled in `elapsed` (consumed, processed, acknowledged): what msg/s counts. Nil means
    /// `context.messages`.
    var messages: Int? = nil
    /// A second unit for cases whose work is not one message each, e.g. (count, "transfers").
    var units: (count: Int, name: String)? = nil
    /// For the endpoint cases: the messages in those batches as the endpoints recorded them (timeouts and
    /// re-sends included), and how many messages' saga handlers ran again in the transaction.
    var batchedMessages: Int? = nil
    var handlerReruns: Int? = nil
    /// For the endpoint cases: a batch's mean commit, publish-and-confirm and whole time, in milliseconds.
    var stageMilliseconds: (commit: Double, publishConfirm: Double, batch: Double)? = nil
}

extension RunResult {
    /// The batches the endpoints recorded.
    init(elapsed: Duration, tally: BatchTally, messages: Int? = nil, units: (count: Int, name: String)? = nil) {
        let (batches, batched) = tally.batches
        self.init(elapsed: elapsed, batches: max(1, batches), messages: messages, units: units,
                  batchedMessages: batched, handlerReruns: tally.reruns)
        if let commit = tally.meanMilliseconds(.commit), let publish = tally.meanMilliseconds(.publishConfirm),
           let batch = tally.meanMilliseconds(.batch) {
            stageMilliseconds = (commit, publish, batch)
        }
    }
}

/// The default of the pipe cases: opaque bodies in A before, everything in B after.
extension BenchmarkCase {
    func setUp(_ context: BenchmarkContext) async throws {}

    func tearDown(_ context: BenchmarkContext) async {}

    /// Empties both queues and puts `messages` messages into A.
    func prepare(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws {
        try await admin.purgeQueue(context.queueA)
        try await admin.purgeQueue(context.queueB)
        let body = Data((0..<context.bodySize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        var next = 0
        while next < context.messages {
            let count = min(1000, context.messages - next)
            let requests = (next..<next + count).map { index in
                PublishRequest.toQueue(context.queueA, AMQPMessage(
                    body: body, properties: BasicProperties(deliveryMode: .transient, messageId: "m\(index)")))
            }
            let outcomes = await admin.publish(requests)
            guard outcomes.allSatisfy({ $0 == .confirmed }) else {
                throw BenchmarkError("filling \(context.queueA): \(outcomes.first { $0 != .confirmed }!)")
            }
            next += count
        }
    }

    /// Checks that the run moved every message from A to B.
    func verify(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws {
        try await expectCounts(admin, [context.queueA: 0, context.queueB: context.messages], after: name)
    }
}

/// Waits (up to 10 s, for acks and confirms still on their way) until every queue holds its expected count.
func expectCounts(_ admin: AMQPConnection, _ expected: [String: Int], after name: String) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while true {
        var found: [String: Int] = [:]
        for queue in expected.keys { found[queue] = try await admin.checkQueue(queue).messageCount }
        if found == expected { return }
        if ContinuousClock.now > deadline {
            let text = expected.keys.sorted().map { "\($0) holds \(found[$0] ?? -1) (want \(expected[$0]!))" }
            throw BenchmarkError("after \(name): " + text.joined(separator: ", "))
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// A benchmark run that went wrong (a nack, a return, a lost message).
struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
