// saga-bench: throughput of consume → publish with confirms → ack loops against one broker, each case
// run in alternating rounds on the same freshly filled queue, reported as medians.
//
//     saga-bench [--messages N] [--rounds R] [--batch B] [--prefetch P] [--body-size S] [--url URL] [--case NAME]
//
// Build it in release to measure: `swift build -c release --product saga-bench`.
import AMQPTransport
import Foundation
import Logging

@main
enum SagaBench {
    /// The cases, run in this order in every round. The first one is the baseline the others are
    /// compared with.
    static let cases: [any BenchmarkCase] = [RawCLoop(), TransportLoop(), TransportIsolatedLoop(), EndpointLoop()]

    static func main() async {
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
        let configuration = try AMQPConfiguration(url: options.url)
        var logger = Logger(label: "saga-bench")
        logger.logLevel = .warning
        let admin = try await AMQPConnection.connect(configuration, logger: logger)
        let queueA = "saga-bench-a-\(UInt32.random(in: 0...UInt32.max))"
        let queueB = "saga-bench-b-\(UInt32.random(in: 0...UInt32.max))"
        for queue in [queueA, queueB] {
            try await admin.declareQueue(QueueDeclaration(name: queue, durable: false, autoDelete: false))
        }
        print("saga-bench: \(options.messages) messages of \(options.bodySize) bytes, batches of \(options.batchSize), "
            + "prefetch \(options.prefetch), \(options.rounds) rounds against \(configuration.redactedURL)")
        let context = BenchmarkContext(configuration: configuration, queueA: queueA, queueB: queueB,
                                       messages: options.messages, batchSize: options.batchSize, prefetch: options.prefetch)
        let cases = try selectedCases(options.only)
        var results = cases.map { CaseResults(name: $0.name) }
        do {
            for round in 1...options.rounds {
                for (index, benchmark) in cases.enumerated() {
                    try await fill(admin, context, bodySize: options.bodySize)
                    let cpuBefore = Stats.processCPUTime()
                    let result = try await benchmark.run(context)
                    let cpuAfter = Stats.processCPUTime()
                    let user = (cpuAfter.user - cpuBefore.user) * 1e6 / Double(options.messages)
                    let system = (cpuAfter.system - cpuBefore.system) * 1e6 / Double(options.messages)
                    try await verify(admin, context, after: benchmark.name)
                    let rate = Stats.rate(messages: options.messages, elapsed: result.elapsed)
                    results[index].rates.append(rate)
                    let seconds = String(format: "%.3f s", Stats.seconds(result.elapsed))
                    let averageBatch = String(format: "%.1f", Double(options.messages) / Double(max(1, result.batches)))
                    print("round \(round)  \(Stats.pad(benchmark.name, 24)) \(Stats.padLeft(Stats.format(rate), 9)) msg/s"
                        + "  \(seconds), \(result.batches) batches of \(averageBatch) on average, "
                        + String(format: "CPU/msg %.1f µs user + %.1f µs system", user, system))
                }
            }
        } catch {
            await cleanUp(admin, [queueA, queueB])
            throw error
        }
        await cleanUp(admin, [queueA, queueB])
        report(results)
    }

    /// The cases named with `--case` (by a case-insensitive part of their name), else all.
    static func selectedCases(_ names: [String]) throws -> [any BenchmarkCase] {
        guard !names.isEmpty else { return cases }
        let selected = cases.filter { benchmark in names.contains { benchmark.name.lowercased().contains($0.lowercased()) } }
        guard !selected.isEmpty else {
            throw BenchmarkError("no case matches \(names); the cases are: \(cases.map(\.name).joined(separator: ", "))")
        }
        return selected
    }

    /// Empties both queues and puts `messages` messages into A (not timed).
    static func fill(_ admin: AMQPConnection, _ context: BenchmarkContext, bodySize: Int) async throws {
        try await admin.purgeQueue(context.queueA)
        try await admin.purgeQueue(context.queueB)
        let body = Data((0..<bodySize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
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
    static func verify(_ admin: AMQPConnection, _ context: BenchmarkContext, after name: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let a = try await admin.checkQueue(context.queueA).messageCount
            let b = try await admin.checkQueue(context.queueB).messageCount
            if a == 0 && b == context.messages { return }
            if ContinuousClock.now > deadline {
                throw BenchmarkError("after \(name): queue A holds \(a) messages (want 0), B \(b) (want \(context.messages))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    static func cleanUp(_ admin: AMQPConnection, _ queues: [String]) async {
        for queue in queues { _ = try? await admin.deleteQueue(queue) }
        await admin.close()
    }

    static func report(_ results: [CaseResults]) {
        print("")
        print("median over \(results.first?.rates.count ?? 0) rounds:")
        for result in results {
            print("  \(Stats.pad(result.name, 24)) \(Stats.padLeft(Stats.format(result.median), 9)) msg/s")
        }
        guard let baseline = results.first, baseline.median > 0 else { return }
        for result in results.dropFirst() {
            let ratio = result.median / baseline.median
            print("  ratio \(result.name) / \(baseline.name): \(String(format: "%.3f", ratio))")
        }
    }
}

/// The command line (no argument parser: a handful of `--name value` options).
struct Options {
    var messages = 20_000
    var rounds = 3
    var batchSize = 100
    var prefetch: UInt16 = 200
    var bodySize = 100
    var url = ProcessInfo.processInfo.environment["AMQP_URL"].flatMap { $0.isEmpty ? nil : $0 }
        ?? "amqp://guest:guest@127.0.0.1:5672/"
    var only: [String] = []
    var help = false

    static let usage = """
        usage: saga-bench [--messages N] [--rounds R] [--batch B] [--prefetch P] [--body-size S] [--url URL] [--case NAME]

          --messages N    messages moved from queue A to queue B per run (default 20000)
          --rounds R      rounds; each runs every case once, alternating (default 3)
          --batch B       deliveries published, confirmed and acknowledged together (default 100)
          --prefetch P    unacknowledged deliveries in flight per consumer (default 200)
          --body-size S   message body size in bytes (default 100)
          --url URL       the broker (default: AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/)
          --case NAME     run only the cases whose name contains NAME (repeatable), e.g. --case raw
        """

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var remaining = arguments[...]
        func value(_ name: String) throws -> String {
            guard let value = remaining.popFirst() else { throw BenchmarkError("\(name) needs a value\n\(usage)") }
            return value
        }
        func positive(_ name: String) throws -> Int {
            let text = try value(name)
            guard let number = Int(text), number > 0 else { throw BenchmarkError("\(name) must be a positive integer, not '\(text)'") }
            return number
        }
        while let argument = remaining.popFirst() {
            switch argument {
            case "--messages": options.messages = try positive(argument)
            case "--rounds": options.rounds = try positive(argument)
            case "--batch": options.batchSize = try positive(argument)
            case "--prefetch":
                let prefetch = try positive(argument)
                guard prefetch <= Int(UInt16.max) else { throw BenchmarkError("--prefetch must be at most \(UInt16.max)") }
                options.prefetch = UInt16(prefetch)
            case "--body-size": options.bodySize = try positive(argument)
            case "--url": options.url = try value(argument)
            case "--case": options.only.append(try value(argument))
            case "--help", "-h": options.help = true
            default: throw BenchmarkError("unknown argument '\(argument)'\n\(usage)")
            }
        }
        return options
    }
}
