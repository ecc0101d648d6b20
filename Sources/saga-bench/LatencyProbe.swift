// Latency of case (b) at a fixed load: a paced producer sends TransferRequested to `transfers` at a given
// rate (half of the measured maximum), the endpoint turns each into a DebitAccount on `bank`, and a consumer
// of `bank` takes the time each command arrived (both in `PacedClient`). A message's latency runs from the
// moment it was due to be sent (its slot in the schedule, not the moment the producer got round to it), so a
// stalled producer or endpoint shows up as latency instead of silently sending later (no coordinated
// omission).
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
    /// CPU time the paced client (producer and consumer) used, per message sent, in microseconds.
    var clientMicrosPerMessage: Double
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
        let admin = try await AMQPConnection.connect(context.configuration, logger: logger)
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
        do {
            let client = PacedClient(configuration: context.configuration, requests: TransferTopology.requests(count), rate: rate)
            let paced = try await onThread { try client.run() }
            let latencies = paced.arrivals.map(\.milliseconds)
            let timeline = LatencyTimeline(start: paced.start, arrivals: paced.arrivals, endpoint: tally.timeline)
            if let timelinePath { try timeline.write(to: timelinePath) }
            await stopForwarder()
            try await TransferTopology.purge(admin)
            await admin.close()
            return LatencyResult(rate: rate, sent: paced.sent, received: latencies.count,
                                 p50: Stats.percentile(latencies, 0.5), p99: Stats.percentile(latencies, 0.99),
                                 max: latencies.max() ?? 0,
                                 clientMicrosPerMessage: Stats.seconds(paced.clientCPU) * 1_000_000 / Double(max(1, paced.sent)),
                                 batches: forwarder == .endpoint ? LatencyBatches(tally) : nil,
                                 commitStalls: forwarder == .endpoint ? timeline.commitStalls : nil)
        } catch {
            await stopForwarder()
            await admin.close()
            throw error
        }
    }
}
