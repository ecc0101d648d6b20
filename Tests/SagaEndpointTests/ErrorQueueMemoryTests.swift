import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

// Error copies of messages over the endpoint's body limit (BodyTooLarge) keep their whole body, up to the
// broker's max_message_size (128 MiB on RabbitMQ 3.x, 16 MiB on 4.x). `errors list` prints no body, yet it
// kept every one it listed: with 40 copies of 4 MiB the command's resident memory grew by about 200 MiB
// (their total is 160), so `list --limit 1000` of such copies could take gigabytes. Twice as many here, so
// that what the bodies cost stands out from what the machine's load does to the peaks; one test at a time
// for the same reason.
@Suite("Error queue: the memory of `errors list` over large error copies", .timeLimit(.minutes(4)), .serialized)
struct ErrorQueueMemoryTests {
    static let count = 80
    static let size = 4 << 20

    /// Runs `saga-endpoint errors <arguments>` under /usr/bin/time; its peak resident memory in MiB.
    static func peakMiB(_ url: String, _ arguments: [String]) async throws -> (run: CLIRun, peak: Int) {
        let process = try ChildProcess(executable: "/usr/bin/time", arguments: [
            "-f", "maxrss=%M", CLIProcessTests.executablePath, "errors",
        ] + arguments + ["--amqp-url", url, "--log-level", "warning"])
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(90)) }
        let run = CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
        let line = run.errorOutput.split(separator: "\n").last { $0.hasPrefix("maxrss=") } ?? ""
        return (run, (Int(line.dropFirst("maxrss=".count)) ?? 0) / 1024)
    }

    /// A node whose transfers.error holds `count` copies of `size` bytes.
    static func parkLargeCopies() async throws -> (DedicatedBrokerNode, AMQPConnection) {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        let connection = try await AMQPConnection.connect(url: node.url, connectionName: "memory")
        try await connection.declareQueue(QueueDeclaration(name: "transfers"))
        try await connection.declareQueue(QueueDeclaration(name: "transfers.error"))
        for index in 0..<Self.count {
            try await connection.publish(.toQueue("transfers.error", AMQPMessage(body: Data(count: Self.size),
                properties: BasicProperties(headers: ["x-original-queue": "transfers", "x-error-type": "BodyTooLarge"],
                                            messageId: "big-\(index)", type: "T"))))
        }
        try await waitUntil(timeout: .seconds(30)) {
            try await connection.checkQueue("transfers.error").messageCount == Self.count
        }
        return (node, connection)
    }

    @Test("errors list of 80 copies of 4 MiB does not keep their bodies (less than their total)")
    func listKeepsNoBodies() async throws {
        let (node, connection) = try await Self.parkLargeCopies()
        defer { node.shutdown() }
        // A small queue's list, for the command's own footprint.
        let (_, baseline) = try await Self.peakMiB(node.url, ["list", "--queue", "transfers", "--any-queue"])
        let (run, peak) = try await Self.peakMiB(node.url, ["list", "--limit", "100"])
        #expect(run.status == 0, "\(run)")
        #expect(run.output.split(separator: "\n").count == Self.count, "\(run)")
        let total = Self.count * Self.size >> 20
        print("errors list of \(Self.count) x \(Self.size >> 20) MiB: peak \(peak) MiB, baseline \(baseline) MiB")
        // Before: 403 MiB against 29 (every body kept, so at least their total). The pass itself still costs
        // memory that grows with the copies it reads (about 200 MiB here, as `show` of a missing id).
        #expect(peak - baseline < total, "peak \(peak) MiB against \(baseline) MiB for an empty queue")
        #expect(try await connection.checkQueue("transfers.error").messageCount == Self.count)
        await connection.close()
    }

    // A replay waits for each confirm while the broker pushes the rest of its window (1,000) into the
    // process: the whole queue here. And the consumer's buffer kept the deliveries already replayed as long
    // as it never emptied (up to 1,023 of them). Before, with 40 copies: 242 MiB against 29 for an empty queue.
    @Test("errors replay --all of 80 copies of 4 MiB does not take them all in ahead of its replays")
    func replayAllBoundsWhatIsPushedAhead() async throws {
        let (node, connection) = try await Self.parkLargeCopies()
        defer { node.shutdown() }
        let (_, baseline) = try await Self.peakMiB(node.url, ["list", "--queue", "transfers", "--any-queue"])
        let (run, peak) = try await Self.peakMiB(node.url, ["replay", "--all"])
        #expect(run.status == 0, "\(run)")
        print("errors replay --all of \(Self.count) x \(Self.size >> 20) MiB: peak \(peak) MiB, baseline \(baseline) MiB")
        #expect(peak - baseline < Self.count * Self.size >> 21, "peak \(peak) MiB against \(baseline) MiB for an empty queue")
        #expect(try await connection.checkQueue("transfers").messageCount == Self.count)
        #expect(try await connection.checkQueue("transfers.error").messageCount == 0)
        await connection.close()
    }
}
