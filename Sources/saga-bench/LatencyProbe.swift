// Latency of case (b) at a fixed load: a paced producer sends TransferRequested to `transfers` at a given
// rate (half of the measured maximum), the endpoint turns each into a DebitAccount on `bank`, and a consumer
// of `bank` takes the time each command arrived. A message's latency runs from the moment it was due to be
// sent (its slot in the schedule, not the moment the producer got round to it), so a stalled producer or
// endpoint shows up as latency instead of silently sending later (no coordinated omission).
import AMQPTransport
import Foundation
import Logging
import MoneyTransfer

struct LatencyResult: Sendable {
    var rate: Double
    var sent: Int
    var received: Int
    /// Latencies in milliseconds.
    var p50: Double
    var p99: Double
    var max: Double
    /// The batches the endpoint ran during the schedule (nil for the bare forwarder). Mostly full batches
    /// mean it ran at its capacity under this load, whatever the rate was measured against.
    var batches: LatencyBatches?
    /// The endpoint's commits longer than `LatencyTimeline.stallMilliseconds` (nil for the bare forwarder).
    var commitStalls: CommitStalls?
}

/// What the endpoint's metrics recorded during a latency run.
struct LatencyBatches: Sendable {
    var count: Int
    var messages: Int
    /// Batches as large as the endpoint's limit (`limit`).
    var full: Int
    var limit: Int
    /// A batch's mean commit and start-to-acknowledgement time, in milliseconds.
    var commitMilliseconds: Double?
    var batchMilliseconds: Double?

    init(_ tally: BatchTally) {
        (count, messages) = tally.batches
        full = tally.fullBatches
        limit = tally.fullSize
        commitMilliseconds = tally.meanMilliseconds(.commit)
        batchMilliseconds = tally.meanMilliseconds(.batch)
    }
}

enum LatencyProbe {
    /// What moves the messages from `transfers` to `bank`.
    enum Forwarder: Sendable {
        /// The reference app's transfer endpoint (case (b)).
        case endpoint
        /// `TransportForwarder`: the same path without the endpoint, the floor case (b)'s latency sits on.
        case transport
    }

    /// `timelinePath`: where to write the run's timeline as CSV (`LatencyTimeline`), if anywhere.
    static func run(_ context: BenchmarkContext, rate: Double, seconds: Double,
                    forwarder: Forwarder = .endpoint, timelinePath: String? = nil) async throws -> LatencyResult {
        let logger = Logger.quiet("saga-bench-latency")
        let count = max(1, Int(rate * seconds))
        let requests = TransferTopology.requests(count)
        // The DebitAccount's correlation id is the transfer id: it finds the message's slot in the schedule.
        let slots = Dictionary(uniqueKeysWithValues: requests.enumerated().map { ($1.transferId, $0) })
        let interval = 1 / rate

        let admin = try await AMQPConnection.connect(context.configuration, logger: logger)
        var consumerConfiguration = context.configuration
        consumerConfiguration.connectionName = "saga-bench-latency-consumer"
        let consumerConnection = try await AMQPConnection.connect(consumerConfiguration, logger: logger)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await TransferTopology.purge(admin)
        let stopForwarder: @Sendable () async -> Void
        // Reads the endpoint's batches; the bare forwarder records none.
        let tally = BatchTally(fullSize: context.batchSize, timeline: forwarder == .endpoint)
        switch forwarder {
        case .endpoint:
            let endpoint = try await RunningEndpoint.start(
                RunningEndpoint.configuration(context, queues: [TransferTopology.transfers],
                                              databasePath: scratch.path("transfers.sqlite"), name: "saga-bench-transfers"),
                registry: MoneyTransferApp.registry(bankTimeout: TransferStartLoop.bankTimeout), tally: tally)
            stopForwarder = { await endpoint.stop() }
        case .transport:
            let forwarding = try await TransportForwarder.start(context)
            stopForwarder = { await forwarding.stop() }
        }
        let consumer = try await consumerConnection.consume(queue: TransferTopology.bank, prefetch: 1000)
        // Both sides use this origin: slot i is due at start + i × interval.
        let start = ContinuousClock.now + .milliseconds(200)

        let receiving = Task { () throws -> [(at: ContinuousClock.Instant, milliseconds: Double)] in
            var latencies: [(at: ContinuousClock.Instant, milliseconds: Double)] = []
            latencies.reserveCapacity(count)
            var deliveries = consumer.deliveries.makeAsyncIterator()
            while latencies.count < count {
                let batch = try await deliveries.next(upTo: 200)
                guard let last = batch.last else { break }
                let arrived = ContinuousClock.now
                for delivery in batch {
                    guard let id = delivery.message.properties.correlationId, let slot = slots[id] else { continue }
                    let due = start + .seconds(Double(slot) * interval)
                    latencies.append((arrived, Stats.seconds(arrived - due) * 1000))
                }
                try await consumerConnection.ack(last.tag, multiple: true)
            }
            return latencies
        }

        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var next = 0
                while next < count {
                    let now = ContinuousClock.now
                    // Everything whose slot has come goes out now. The wait for its confirms runs in a child
                    // task: the schedule must not wait for the broker's round trip, or the producer would be
                    // measured instead of the endpoint.
                    let dueCount = min(count, Int(Stats.seconds(now - start) / interval) + 1)
                    if dueCount > next {
                        let batch = try requests[next..<dueCount].map {
                            PublishRequest.toQueue(TransferTopology.transfers, try TransferTopology.message($0))
                        }
                        group.addTask {
                            guard await admin.publish(batch).allSatisfy(\.isConfirmed) else {
                                throw BenchmarkError("a paced TransferRequested was not confirmed")
                            }
                        }
                        next = dueCount
                    } else {
                        try await Task.sleep(until: start + .seconds(Double(next) * interval), tolerance: .microseconds(100))
                    }
                }
                try await group.waitForAll()
            }
            let timeout = Task {
                try await Task.sleep(for: .seconds(60))
                receiving.cancel()
            }
            let arrivals = try await receiving.value
            timeout.cancel()
            let latencies = arrivals.map(\.milliseconds)
            let timeline = LatencyTimeline(start: start, arrivals: arrivals, endpoint: tally.timeline)
            if let timelinePath { try timeline.write(to: timelinePath) }
            try? await consumer.cancel()
            await stopForwarder()
            try await TransferTopology.purge(admin)
            await consumerConnection.close()
            await admin.close()
            return LatencyResult(rate: rate, sent: count, received: latencies.count,
                                 p50: Stats.percentile(latencies, 0.5), p99: Stats.percentile(latencies, 0.99),
                                 max: latencies.max() ?? 0,
                                 batches: forwarder == .endpoint ? LatencyBatches(tally) : nil,
                                 commitStalls: forwarder == .endpoint ? timeline.commitStalls : nil)
        } catch {
            receiving.cancel()
            await stopForwarder()
            await consumerConnection.close()
            await admin.close()
            throw error
        }
    }
}
