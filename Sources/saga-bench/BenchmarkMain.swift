// saga-bench: throughput of consume → publish with confirms → ack loops against one broker, from the raw
// rabbitmq-c loop to the reference app's full transfer flow, each case run in alternating rounds on freshly
// filled queues, reported as medians; then the latency of the transfer endpoint at half its maximum rate,
// and the process's peak memory. `--case scale` and `--case soak` are the long, opt-in suites.
//
//     saga-bench [--messages N] [--rounds R] [--ctl CMD] [--case NAME] … (see Options.usage)
//
// Build it in release to measure: `swift build -c release --product saga-bench`.
import AMQPTransport
import Foundation
import Logging

@main
enum SagaBench {
    /// The cases, run in this order in every round. The first one is the baseline the others are
    /// compared with; the last two need the reference app's queue names (see TransferTopology).
    static let pipeCases: [any BenchmarkCase] = [RawCLoop(), TransportLoop(), TransportIsolatedLoop(), EndpointLoop()]
    static let transferCases: [any BenchmarkCase] = [TransferStartLoop(), TransferFlowLoop()]

    static func main() async {
        // Before anything reads the arguments: `--url`'s password is overwritten where `ps` shows it.
        ArgumentPasswords.hide()
        do {
            let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
            if options.help {
                print(Options.usage)
                return
            }
            try await run(options)
        } catch {
            FileHandle.standardError.write(Data("saga-bench: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run(_ options: Options) async throws {
        var configuration = try AMQPConfiguration(url: options.url)
        let vhost = try options.ctl.map { try BenchVhost.create(ctl: $0, user: configuration.user) }
        if let vhost { configuration.vhost = vhost.name }
        defer { vhost?.delete() }
        let logger = Logger.quiet("saga-bench")
        let admin = try await AMQPConnection.connect(configuration, logger: logger)
        let queueA = "saga-bench-a-\(UInt32.random(in: 0...UInt32.max))"
        let queueB = "saga-bench-b-\(UInt32.random(in: 0...UInt32.max))"
        var summary = Summary(options: options)
        var declaredTransferTopology = false
        do {
            for queue in [queueA, queueB] {
                try await admin.declareQueue(QueueDeclaration(name: queue, durable: false, autoDelete: false))
            }
            let ownsTransferTopology = vhost != nil ? true : !(await TransferTopology.inUse(admin))
            if ownsTransferTopology {
                try await TransferTopology.declare(admin)
                declaredTransferTopology = true
            }
            say("saga-bench: \(options.messages) messages per case and run, batches of \(options.batchSize), "
                + "prefetch \(options.prefetch), \(options.rounds) rounds against \(configuration.redactedURL)"
                + (options.durableCommits ? "" : ", RELAXED commits (no fsync per commit; not the default)")
                + (vhost.map { " (vhost \($0.name), deleted at the end)" } ?? ""))
            let context = BenchmarkContext(
                configuration: configuration, queueA: queueA, queueB: queueB, messages: options.messages,
                batchSize: options.batchSize, prefetch: options.prefetch, bodySize: options.bodySize,
                ownsTransferTopology: ownsTransferTopology, durableCommits: options.durableCommits)
            try await runSuites(options, admin, context, &summary)
        } catch {
            await cleanUp(admin, [queueA, queueB], transferTopology: declaredTransferTopology)
            throw error
        }
        await cleanUp(admin, [queueA, queueB], transferTopology: declaredTransferTopology)
        summary.print()
    }

    static func runSuites(_ options: Options, _ admin: AMQPConnection, _ context: BenchmarkContext,
                          _ summary: inout Summary) async throws {
        if (options.scale || options.soak) && !context.ownsTransferTopology {
            throw BenchmarkError("the scale and soak suites need the reference app's queue names: give --ctl")
        }
        if options.scale {
            let cases: [any BenchmarkCase] = [
                TransferStartLoop(name: "transfer start, empty store"),
                TransferStartLoop(name: "transfer start, \(Stats.format(Double(options.liveSagas))) live sagas",
                                  liveSagas: options.liveSagas),
            ]
            summary.scale = try await rounds(cases, admin, context, options)
        }
        if options.soak {
            summary.soak = try await SoakRun.run(context, total: options.soakMessages, chunk: options.soakChunk,
                                                 sampleAt: min(100_000, options.soakMessages))
        }
        guard !options.scale && !options.soak else { return }

        let results = try await rounds(try selectedCases(options.only, context), admin, context, options)
        summary.cases = results
        // Half of the maximum rate measured for case (b) in this run.
        if options.latencySeconds > 0, let start = results.first(where: { $0.name == TransferStartLoop().name }),
           start.median > 0 {
            let rate = options.latencyRate ?? start.median / 2
            // One run's p99 on a shared machine is one draw of a noisy figure: like the rates, it is the
            // median of rounds, each followed by its floor so that both see the same hour.
            for round in 1...options.latencyRounds {
                say("\nlatency of '\(start.name)' at \(options.latencyRate == nil ? "half its median rate" : "a fixed rate"): "
                    + "\(Stats.format(rate)) msg/s for \(options.latencySeconds) s, round \(round) of \(options.latencyRounds)")
                summary.latencyRounds.append(try await LatencyProbe.run(
                    context, rate: rate, seconds: options.latencySeconds, timelinePath: round == 1 ? options.latencyTimeline : nil))
                say("the same schedule through a bare consume → confirmed publish → ack forwarder (no endpoint)")
                summary.floorRounds.append(try await LatencyProbe.run(context, rate: rate, seconds: options.latencySeconds,
                                                                      forwarder: .transport))
                say("RSS now \(ProcessMemory.format(ProcessMemory.residentBytes))")
            }
        }
    }

    /// Runs every case once per round, in order, and collects the rates.
    static func rounds(_ cases: [any BenchmarkCase], _ admin: AMQPConnection, _ context: BenchmarkContext,
                       _ options: Options) async throws -> [CaseResults] {
        do {
            for benchmark in cases { try await benchmark.setUp(context) }
            let results = try await timedRounds(cases, admin, context, options)
            for benchmark in cases { await benchmark.tearDown(context) }
            return results
        } catch {
            for benchmark in cases { await benchmark.tearDown(context) }
            throw error
        }
    }

    private static func timedRounds(_ cases: [any BenchmarkCase], _ admin: AMQPConnection, _ context: BenchmarkContext,
                                    _ options: Options) async throws -> [CaseResults] {
        var results = cases.map { CaseResults(name: $0.name) }
        for round in 1...options.rounds {
            for (index, benchmark) in cases.enumerated() {
                try await benchmark.prepare(admin, context)
                let cpuBefore = Stats.processCPUTime()
                let brokerBefore = Stats.brokerCPUTime()
                let result = try await benchmark.run(context)
                let cpuAfter = Stats.processCPUTime()
                let brokerAfter = Stats.brokerCPUTime()
                try await benchmark.verify(admin, context)
                let messages = result.messages ?? context.messages
                let user = (cpuAfter.user - cpuBefore.user) * 1e6 / Double(messages)
                let system = (cpuAfter.system - cpuBefore.system) * 1e6 / Double(messages)
                let rate = Stats.rate(messages: messages, elapsed: result.elapsed)
                results[index].rates.append(rate)
                var units = ""
                if let (count, name) = result.units {
                    let unitRate = Stats.rate(messages: count, elapsed: result.elapsed)
                    results[index].unitRates.append(unitRate)
                    results[index].unitName = name
                    units = " (\(Stats.format(unitRate)) \(name)/s)"
                }
                let resident = ProcessMemory.residentBytes ?? 0
                results[index].residentAfter.append(resident)
                let seconds = String(format: "%.3f s", Stats.seconds(result.elapsed))
                let averageBatch = String(format: "%.1f", Double(result.batchedMessages ?? messages) / Double(max(1, result.batches)))
                let reruns = result.handlerReruns.map { ", \($0) handlers rerun" } ?? ""
                let stages = result.stageMilliseconds.map {
                    String(format: " (mean ms: commit %.1f, publish+confirm %.1f, batch %.1f)", $0.commit, $0.publishConfirm, $0.batch)
                } ?? ""
                say("round \(round)  \(Stats.pad(benchmark.name, 36)) \(Stats.padLeft(Stats.format(rate), 9)) msg/s\(units)"
                    + "  \(seconds), \(result.batches) batches of \(averageBatch) on average\(stages)\(reruns), "
                    + String(format: "CPU/msg %.1f µs user + %.1f µs system", user, system)
                    + Stats.brokerCPUNote(before: brokerBefore, after: brokerAfter, messages: messages)
                    + ", RSS \(ProcessMemory.format(resident))")
            }
        }
        return results
    }

    /// The cases named with `--case` (by a case-insensitive part of their name), else all; the
    /// money-transfer cases only where their queue names are the bench's to use.
    static func selectedCases(_ names: [String], _ context: BenchmarkContext) throws -> [any BenchmarkCase] {
        var available = pipeCases
        if context.ownsTransferTopology {
            available += transferCases
        } else {
            say("note: `transfers`, `bank` or `transfers.events` exist in this vhost; the money-transfer cases are "
                + "skipped (give --ctl to run everything in a vhost of the bench's own)")
        }
        guard !names.isEmpty else { return available }
        let selected = available.filter { benchmark in names.contains { benchmark.name.lowercased().contains($0.lowercased()) } }
        guard !selected.isEmpty else {
            throw BenchmarkError("no case matches \(names); the cases are: \(available.map(\.name).joined(separator: ", ")), "
                + "and the suites scale and soak")
        }
        return selected
    }

    static func cleanUp(_ admin: AMQPConnection, _ queues: [String], transferTopology: Bool) async {
        for queue in queues { _ = try? await admin.deleteQueue(queue) }
        if transferTopology { await TransferTopology.delete(admin) }
        await admin.close()
    }
}
