// The soak: one endpoint starting transfers (case b) for a long time, to show that its memory and its
// inbox and outbox tables stay bounded. The requests go in in chunks (the broker's queues stay small), the
// commands are thrown away after each chunk, and the deduplication window, outbox retention and
// housekeeping interval are short so that housekeeping has work to do within the run. The sagas stay live
// (no bank answers), so the `sagas` and `timeouts` tables do grow: one row each per transfer, by design.
import AMQPTransport
import Foundation
import Logging
import MoneyTransfer

struct SoakResult: Sendable {
    var messages = 0
    var elapsed: Duration = .zero
    /// The resident set once `sampleAt` messages were processed, and at the end.
    var sampleAt = 0
    var residentAtSample: Int?
    var residentAtEnd: Int?
    var maxInbox = 0
    var maxOutbox = 0
    var finalInbox = 0
    var finalOutbox = 0
    var sagas = 0
}

enum SoakRun {
    /// Short enough that rows expire many times over during the run.
    static let deduplicationWindow: Duration = .seconds(10)
    static let outboxRetention: Duration = .seconds(10)
    static let housekeepingInterval: Duration = .seconds(5)

    static func run(_ context: BenchmarkContext, total: Int, chunk: Int, sampleAt: Int) async throws -> SoakResult {
        let logger = Logger.quiet("saga-bench-soak")
        let admin = try await AMQPConnection.connect(context.configuration, logger: logger)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try await TransferTopology.purge(admin)
        let path = scratch.path("transfers.sqlite")
        var configuration = RunningEndpoint.configuration(
            context, queues: [TransferTopology.transfers], databasePath: path, name: "saga-bench-soak")
        configuration.deduplicationWindow = deduplicationWindow
        configuration.outboxRetention = outboxRetention
        configuration.housekeepingInterval = housekeepingInterval
        say("soak: \(Stats.format(Double(total))) TransferRequested in chunks of \(Stats.format(Double(chunk))) through one "
            + "endpoint; deduplication window \(deduplicationWindow), outbox retention \(outboxRetention), "
            + "housekeeping every \(housekeepingInterval)")
        let endpoint = try await RunningEndpoint.start(
            configuration, registry: MoneyTransferApp.registry(bankTimeout: TransferStartLoop.bankTimeout))
        var result = SoakResult(sampleAt: sampleAt)
        let started = ContinuousClock.now
        do {
            while result.messages < total {
                let count = min(chunk, total - result.messages)
                let chunkStarted = ContinuousClock.now
                try await TransferTopology.publishRequests(count, on: admin)
                try await TransferTopology.waitFor(count, in: TransferTopology.bank, on: admin, poll: .milliseconds(20))
                try await TransferTopology.purge(admin)
                let rate = Stats.rate(messages: count, elapsed: ContinuousClock.now - chunkStarted)
                result.messages += count
                let inbox = try LiveSagas.count("inbox", path: path)
                let outbox = try LiveSagas.count("outbox", path: path)
                result.maxInbox = max(result.maxInbox, inbox)
                result.maxOutbox = max(result.maxOutbox, outbox)
                (result.finalInbox, result.finalOutbox) = (inbox, outbox)
                if result.residentAtSample == nil, result.messages >= sampleAt {
                    result.residentAtSample = ProcessMemory.residentBytes
                }
                say("  soak \(Stats.padLeft(Stats.format(Double(result.messages)), 9)) processed  "
                    + "\(Stats.padLeft(Stats.format(rate), 6)) msg/s (publishing included)  "
                    + "RSS \(ProcessMemory.format(ProcessMemory.residentBytes))  inbox \(inbox) rows, outbox \(outbox) rows")
            }
            result.elapsed = ContinuousClock.now - started
            result.residentAtEnd = ProcessMemory.residentBytes
            result.sagas = try LiveSagas.count("sagas", path: path)
            try await TransferTopology.waitUntilEmpty(TransferTopology.transfers, on: admin)
            await endpoint.stop()
            await admin.close()
            return result
        } catch {
            await endpoint.stop()
            await admin.close()
            throw error
        }
    }
}
