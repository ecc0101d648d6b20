// Case (b): the reference app's endpoint starting transfers. Queue `transfers` is pre-filled with
// TransferRequested; the endpoint (MoneyTransferApp.registry, as `saga-endpoint run` hosts it) starts one
// TransferSaga per message: state, inbox, outbox and a BankReplyTimeout committed per batch, DebitAccount
// published to `bank` with confirms, deliveries acked after. Timed until `bank` holds every command.
import AMQPTransport
import Foundation
import Logging
import MoneyTransfer

struct TransferStartLoop: BenchmarkCase {
    var name = "transfer saga start"
    /// Sagas already live in the store before every run (the scale case); 0: a fresh store per run.
    var liveSagas = 0
    /// Where the pre-populated store lives across the rounds (`prepare` deletes what a run added to it).
    private let populatedPath = FileManager.default.temporaryDirectory
        .appendingPathComponent("saga-bench-live-\(UUID().uuidString).sqlite").path

    /// No bank answers in this case: a re-sent DebitAccount must not be counted as throughput, so the bank
    /// timeout is far longer than any run.
    static let bankTimeout: Duration = .seconds(3600)

    init(name: String = "transfer saga start", liveSagas: Int = 0) {
        self.name = name
        self.liveSagas = liveSagas
    }

    func setUp(_ context: BenchmarkContext) async throws {
        guard liveSagas > 0 else { return }
        let started = ContinuousClock.now
        let (path, count) = (populatedPath, liveSagas)
        try await onThread { try LiveSagas.populate(path: path, count: count) }
        let sagas = try LiveSagas.count("sagas", path: populatedPath)
        say("  \(name): store pre-populated with \(Stats.format(Double(sagas))) live sagas "
            + String(format: "in %.1f s", Stats.seconds(ContinuousClock.now - started)))
    }

    func tearDown(_ context: BenchmarkContext) async {
        guard liveSagas > 0 else { return }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: populatedPath + suffix) }
    }

    func prepare(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws {
        if liveSagas > 0 {
            // Every round measures the same store: the million sagas, not also the rows of earlier rounds.
            let path = populatedPath
            try await onThread { try LiveSagas.reset(path: path) }
        }
        try await TransferTopology.purge(admin)
        try await TransferTopology.publishRequests(context.messages, on: admin)
    }

    func run(_ context: BenchmarkContext) async throws -> RunResult {
        let logger = Logger.quiet("saga-bench")
        let admin = try await AMQPConnection.connect(context.configuration, logger: logger)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        do {
            let configuration = RunningEndpoint.configuration(
                context, queues: [TransferTopology.transfers],
                databasePath: liveSagas > 0 ? populatedPath : scratch.path("transfers.sqlite"),
                name: "saga-bench-transfers")
            let tally = BatchTally()
            let endpoint = try await RunningEndpoint.start(
                configuration, registry: MoneyTransferApp.registry(bankTimeout: Self.bankTimeout), tally: tally)
            let started = ContinuousClock.now
            do {
                try await TransferTopology.waitFor(context.messages, in: TransferTopology.bank, on: admin)
            } catch {
                await endpoint.stop()
                throw error
            }
            let elapsed = ContinuousClock.now - started
            // Let the last acks go out before stopping, so that verify finds `transfers` empty.
            try await TransferTopology.waitUntilEmpty(TransferTopology.transfers, on: admin)
            try await Task.sleep(for: .milliseconds(200))
            await endpoint.stop()
            await admin.close()
            return RunResult(elapsed: elapsed, tally: tally)
        } catch {
            await admin.close()
            throw error
        }
    }

    func verify(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws {
        try await expectCounts(admin, [TransferTopology.transfers: 0, TransferTopology.bank: context.messages], after: name)
    }
}
