// Case (c): the whole transfer flow, as `make demo` runs it but in this process: the transfer endpoint on
// `transfers` and the simulated bank (MoneyTransferApp.bankRegistry, a second SagaEndpoint with a database of
// its own) on `bank`. `transfers` is pre-filled with TransferRequested; timed until every transfer's terminal
// event reached the sink queue bound to `transfers.events`.
//
// A transfer is five messages handled: TransferRequested, DebitAccount (bank), AccountDebited, CreditAccount
// (bank), AccountCredited, plus TransferCompleted published. The case runs messages / 5 transfers so that it
// handles about as many messages as the other cases.
import AMQPTransport
import Logging
import MoneyTransfer

struct TransferFlowLoop: BenchmarkCase {
    let name = "transfer flow + bank"
    static let messagesPerTransfer = 5

    static func transfers(_ context: BenchmarkContext) -> Int { max(1, context.messages / messagesPerTransfer) }

    func prepare(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws {
        try await TransferTopology.purge(admin)
        try await TransferTopology.publishRequests(Self.transfers(context), on: admin)
    }

    func run(_ context: BenchmarkContext) async throws -> RunResult {
        let logger = Logger.quiet("saga-bench")
        let admin = try await AMQPConnection.connect(context.configuration, logger: logger)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let transfers = Self.transfers(context)
        var running: [RunningEndpoint] = []
        let tally = BatchTally()
        do {
            // The bank first, so the clock starts with both consuming.
            running.append(try await RunningEndpoint.start(
                RunningEndpoint.configuration(context, queues: [TransferTopology.bank],
                                              databasePath: scratch.path("bank.sqlite"), name: "saga-bench-bank"),
                registry: MoneyTransferApp.bankRegistry(), tally: tally))
            // Long bank timeout: with the whole backlog queued at once, a DebitAccount can wait in `bank` for
            // longer than the app's 10 s default, and the re-sends would be extra work no client asked for.
            running.append(try await RunningEndpoint.start(
                RunningEndpoint.configuration(context, queues: [TransferTopology.transfers],
                                              databasePath: scratch.path("transfers.sqlite"), name: "saga-bench-transfers"),
                registry: MoneyTransferApp.registry(bankTimeout: TransferStartLoop.bankTimeout), tally: tally))
            let started = ContinuousClock.now
            try await TransferTopology.waitFor(transfers, in: TransferTopology.eventSink, on: admin, poll: TransferTopology.completionPoll)
            let elapsed = ContinuousClock.now - started
            try await TransferTopology.waitUntilEmpty(TransferTopology.transfers, on: admin)
            try await TransferTopology.waitUntilEmpty(TransferTopology.bank, on: admin)
            try await Task.sleep(for: .milliseconds(200))
            for endpoint in running.reversed() { await endpoint.stop() }
            await admin.close()
            return RunResult(elapsed: elapsed, tally: tally, messages: transfers * Self.messagesPerTransfer,
                             units: (transfers, "transfers"))
        } catch {
            for endpoint in running.reversed() { await endpoint.stop() }
            await admin.close()
            throw error
        }
    }

    func verify(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws {
        try await expectCounts(admin, [TransferTopology.transfers: 0, TransferTopology.bank: 0,
                                       TransferTopology.eventSink: Self.transfers(context)], after: name)
    }
}
