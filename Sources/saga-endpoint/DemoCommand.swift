import AMQPTransport
import ArgumentParser
import Dispatch
import Foundation
import Logging
import MoneyTransfer

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `demo`: the money-transfer app end to end.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Drive transfers and payout batches through the endpoint and the bank, and check the outcome.",
        discussion: """
            Starts `run` and `bank` as child processes of this executable with temporary databases (unless \
            --no-spawn), declares the topology, listens to transfers.events and payouts.events, publishes the \
            requests (about 10% to closed-… accounts, refunded, and 10% from poor-… accounts, debit rejected; \
            some requests published twice with the same message id), waits for every transfer's terminal event, \
            stops the children with SIGTERM and prints a summary. Exits 1 unless every transfer and payout ended \
            exactly once with the expected outcome and the children stopped cleanly.
            """)

    @OptionGroup var amqp: AMQPOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var topologyOptions: TopologyOptions

    @Option(help: "Single transfers to request.") var transfers = 1000
    @Option(help: "Payout batches to request.") var batches = 10
    @Option(help: "Transfers per payout batch.") var batchSize = 5
    @Option(help: ArgumentHelp("Fraction of single requests published a second time with the same message id.", valueName: "fraction"))
    var duplicates = 0.05
    @Option(help: ArgumentHelp("Seconds to wait for all terminal events.", valueName: "seconds")) var timeout: Double = 120
    @Option(help: ArgumentHelp("Seconds to keep listening after the last terminal event (to catch repeats).", valueName: "seconds"))
    var settle: Double = 2
    @Option(help: ArgumentHelp("The spawned endpoint's --bank-timeout.", valueName: "seconds")) var bankTimeout: Double = 10
    @Option(help: "Seed of the workload generator (default: random).") var seed: UInt64?
    @Flag(help: "Do not start the endpoint and the bank: use those already consuming the queues.") var noSpawn = false
    @Flag(help: "Start the endpoint and the bank even when the queues already have consumers (another endpoint or bank in this vhost).")
    var force = false

    /// The most transfers one run plans: its workload is held in memory (999,950 took 820 MB of RSS).
    static let maximumTransfers = 1_000_000

    func validate() throws {
        guard transfers >= 0, batches >= 0 else { throw ValidationError("--transfers and --batches must not be negative") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard transfers > 0 || batches > 0 else { throw ValidationError("nothing to do: --transfers and --batches are both 0") }
        // The workload is planned in memory before the first request, and its counts were added up
        // unchecked: `--transfers` near Int.max trapped here, and large counts were planned for minutes first.
        let (inBatches, overflow) = batches.multipliedReportingOverflow(by: batchSize)
        guard !overflow, inBatches <= Self.maximumTransfers, transfers <= Self.maximumTransfers - inBatches else {
            throw ValidationError("--transfers, and --batches times --batch-size, add up to at most "
                + "\(Self.maximumTransfers) transfers")
        }
        guard (0...1).contains(duplicates) else { throw ValidationError("--duplicates must be between 0 and 1") }
        for (name, value) in [("--timeout", timeout), ("--bank-timeout", bankTimeout)] where !(value.isFinite && value > 0) {
            throw ValidationError("\(name) must be a positive number of seconds")
        }
        guard settle.isFinite, settle >= 0 else { throw ValidationError("--settle must not be negative") }
    }

    func run() async throws {
        let logger = logging.bootstrap()
        let seed = self.seed ?? UInt64.random(in: 1...UInt64.max)
        let workload = try DemoWorkload(singles: transfers, batchCount: batches, batchSize: batchSize,
                                        duplicateRate: duplicates, seed: seed)
        logger.info("demo workload", metadata: [
            "run": "\(workload.runId)", "seed": "\(seed)", "transfers": "\(workload.transfers.count)",
            "publications": "\(workload.publications.count)",
        ])
        let topology = try TopologyOptions.load(directory: topologyOptions.directory, logger: logger)
        let connection = try await BrokerConnection.open(url: amqp.url, name: "saga-endpoint-demo", logger: logger)
        let supervisor = ChildSupervisor()
        var directory: String?
        let outcome: DemoSummary, exits: [ChildSupervisor.Exit]
        do {
            try await TopologyActions.declare(topology, on: connection, logger: logger)
            let subscription = try await EventSubscription.open(
                on: connection, exchanges: [MoneyTransferApp.transferEventsExchange, MoneyTransferApp.payoutEventsExchange])
            var signalSources: [any DispatchSourceSignal] = []
            if !noSpawn {
                if !force { try await refuseQueuesInUse(on: connection) }
                let folder = try Self.makeTemporaryDirectory()
                directory = folder
                try await spawnChildren(supervisor, in: folder)
                signalSources = forwardSignals(to: await supervisor.pids, keeping: folder)
            }
            try await waitForConsumers(on: connection, supervisor: supervisor)
            outcome = try await drive(workload, connection: connection, subscription: subscription, supervisor: supervisor)
            exits = await supervisor.terminateAll(timeout: .seconds(30))
            withExtendedLifetime(signalSources) {}
            try? await subscription.consumer.cancel()
            await connection.close()
        } catch {
            for exit in await supervisor.terminateAll(timeout: .seconds(10)) where !exit.clean {
                printError("\(exit.name) log (\(exit.logPath)):\n\(ChildSupervisor.tail(exit.logPath))")
            }
            await connection.close()
            if let directory { printError("child logs and databases kept in \(directory)") }
            throw error
        }
        try finish(outcome, exits: exits, directory: directory)
    }

    /// Stops before anything is published when something already consumes the demo's queues: typing
    /// `saga-endpoint demo` in a shell whose AMQP_URL points at a live vhost sent a thousand transfers
    /// into it, and its endpoint and the demo's took each other's messages (demo sagas stuck in the live
    /// database, live transfers stalled).
    private func refuseQueuesInUse(on connection: AMQPConnection) async throws {
        var busy: [String] = []
        for queue in [MoneyTransferApp.transfersQueue, MoneyTransferApp.payoutsQueue, MoneyTransferApp.bankQueue] {
            let consumers = try await connection.checkQueue(queue).consumerCount
            if consumers > 0 { busy.append("\(queue) (\(consumers))") }
        }
        guard !busy.isEmpty else { return }
        throw CLIError("the demo's queues already have consumers in this vhost: \(busy.joined(separator: ", ")); "
            + "an endpoint or a bank runs there, and the demo would take its messages (and it the demo's). Give the "
            + "demo a vhost of its own (see the README), use --no-spawn to drive the ones running, or --force")
    }

    /// Publishes the workload and waits for the events; returns the summary.
    private func drive(_ workload: DemoWorkload, connection: AMQPConnection, subscription: EventSubscription,
                       supervisor: ChildSupervisor) async throws -> DemoSummary {
        let tracker = DemoTracker(workload)
        let listener = Task {
            for try await delivery in subscription.consumer.deliveries {
                await subscription.ack(delivery)
                if let event = Wire.event(delivery) { await tracker.record(event, at: .now) }
            }
        }
        defer { listener.cancel() }
        let publisher = Task {
            var pending = workload.publications[...]
            while !pending.isEmpty {
                let chunk = pending.prefix(100)
                pending = pending.dropFirst(chunk.count)
                await tracker.published(chunk.flatMap(\.starts), at: .now)
                do {
                    try await Wire.publish(chunk.map(\.request), on: connection)
                } catch {
                    await tracker.publishingFailed("\(error)")
                    throw error
                }
            }
        }
        defer { publisher.cancel() }

        let progress = ProgressReporter()
        let deadline = ContinuousClock.now + secondsDuration(timeout)
        var lastShown = ContinuousClock.now
        while !(await tracker.isDone) {
            if ContinuousClock.now >= deadline {
                progress.finish()
                printError("timed out after \(timeout) s waiting for terminal events")
                break
            }
            if let failure = await tracker.publishFailure {
                progress.finish()
                throw CLIError(failure)
            }
            if let exit = await supervisor.exitedChild() {
                progress.finish()
                throw CLIError("\(exit.name) exited early (status \(exit.status)):\n\(ChildSupervisor.tail(exit.logPath))")
            }
            try await Task.sleep(for: .milliseconds(50))
            if ContinuousClock.now - lastShown >= progress.interval {
                progress.show(await tracker.progress)
                lastShown = .now
            }
        }
        try await publisher.value
        if await tracker.isDone, settle > 0 { try await Task.sleep(for: secondsDuration(settle)) }
        progress.show(await tracker.progress)
        progress.finish()
        return await tracker.summary(duplicates: workload.duplicates, singles: transfers)
    }

    private func finish(_ summary: DemoSummary, exits: [ChildSupervisor.Exit], directory: String?) throws {
        var text = summary.table(target: amqp.redactedURL)
        for exit in exits {
            let how = exit.killed ? "killed after not stopping" : exit.bySignal ? "ended by signal \(exit.status)" : "exit status \(exit.status)"
            text += "\n  \(exit.name.padding(toLength: 19, withPad: " ", startingAt: 0))  \(exit.clean ? "stopped cleanly" : how)"
        }
        printLine(text)
        let ok = summary.succeeded && exits.allSatisfy(\.clean)
        if let directory {
            if ok {
                try? FileManager.default.removeItem(atPath: directory)
            } else {
                printError("child logs and databases kept in \(directory)")
            }
        }
        if !ok { throw ExitCode.failure }
    }

    private func spawnChildren(_ supervisor: ChildSupervisor, in folder: String) async throws {
        let environment = ["AMQP_URL": amqp.url, "LOG_LEVEL": logging.level.rawValue]
        var endpointArguments = ["run", "--database", "\(folder)/saga.sqlite", "--bank-timeout", "\(bankTimeout)",
                                 "--no-declare-topology"]
        var bankArguments = ["bank", "--database", "\(folder)/bank.sqlite", "--no-declare-topology"]
        if let directory = topologyOptions.directory {
            endpointArguments += ["--topology-dir", directory]
            bankArguments += ["--topology-dir", directory]
        }
        _ = try await supervisor.spawn(name: "endpoint (run)", arguments: endpointArguments, environment: environment,
                                       logPath: "\(folder)/run.log")
        _ = try await supervisor.spawn(name: "bank", arguments: bankArguments, environment: environment,
                                       logPath: "\(folder)/bank.log")
    }

    /// Waits until `transfers`, `payouts` and `bank` each have a consumer.
    private func waitForConsumers(on connection: AMQPConnection, supervisor: ChildSupervisor) async throws {
        let queues = [MoneyTransferApp.transfersQueue, MoneyTransferApp.payoutsQueue, MoneyTransferApp.bankQueue]
        let limit = min(60, timeout)
        let deadline = ContinuousClock.now + secondsDuration(limit)
        while true {
            var idle: [String] = []
            for queue in queues where try await connection.checkQueue(queue).consumerCount == 0 { idle.append(queue) }
            if idle.isEmpty { return }
            if let exit = await supervisor.exitedChild() {
                throw CLIError("\(exit.name) exited early (status \(exit.status)):\n\(ChildSupervisor.tail(exit.logPath))")
            }
            guard ContinuousClock.now < deadline else {
                throw CLIError("no consumer on \(idle.joined(separator: ", ")) after \(Int(limit)) s"
                    + (noSpawn ? " (--no-spawn: start `saga-endpoint run` and `saga-endpoint bank` first)" : ""))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// A new folder for the children's logs and databases, for this user only (`mkdtemp`: mode 0700, and
    /// never a folder that exists already). It was created with the umask's 0755 under a guessable-length
    /// name, and a folder of that name already there (another user's, in a shared /tmp) was used as it was.
    static func makeTemporaryDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("saga-demo-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CLIError("cannot create a folder for the demo's processes in \(NSTemporaryDirectory()): "
                + String(cString: strerror(errno)))
        }
        return String(cString: made)
    }

    /// On SIGINT or SIGTERM: SIGTERM to the children (they shut down gracefully), then exit.
    private func forwardSignals(to pids: [Int32], keeping folder: String) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { (number: Int32) -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                for pid in pids { kill(pid, SIGTERM) }
                printError("\ndemo interrupted: sent SIGTERM to the endpoint processes; their logs are in \(folder)")
                Foundation.exit(128 + number)
            }
            source.resume()
            return source
        }
    }
}
