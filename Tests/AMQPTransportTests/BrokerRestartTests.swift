// The broker stops and starts again in the middle of a stream of confirmed publishes (on a node of the
// test's own): the client recovers by itself, and no confirmed message is lost.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Broker restart during confirmed publishing")
struct BrokerRestartTests {
    /// What the publisher has done so far, shared with the test.
    struct Progress: Sendable {
        var confirmed = Set<String>()
        var failedOutcomes = 0
        var stop = false
    }

    @Test("every confirmed message survives a broker restart; failed publishes are retried until confirmed")
    func noConfirmedMessageIsLost() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(
            url: node.url, connectionName: "restart-publisher",
            recovery: RecoveryPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(1)))
        let queue = TestBroker.uniqueName("amqp-test-restart")
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: true))

        // Publishes persistent messages in batches until told to stop, then until every one is confirmed;
        // a publish whose outcome is .failed is published again (same message id).
        let progress = Box(Progress())
        let publisher = Task {
            var next = 0
            var retry: [String] = []
            while !(progress.withLock(\.stop) && retry.isEmpty) {
                var batch = retry
                while batch.count < 50 && !progress.withLock(\.stop) {
                    batch.append("m\(next)")
                    next += 1
                }
                let outcomes = await connection.publish(batch.map { .toQueue(queue, message($0, persistent: true)) })
                retry = []
                for (id, outcome) in zip(batch, outcomes) {
                    switch outcome {
                    case .confirmed: progress.withLock { _ = $0.confirmed.insert(id) }
                    case .failed, .nacked: retry.append(id); progress.withLock { $0.failedOutcomes += 1 }
                    case .returned: Issue.record("\(id) was returned: the durable queue should exist")
                    }
                }
                try? await Task.sleep(for: .milliseconds(retry.isEmpty ? 5 : 100))
                if Task.isCancelled { return }
            }
        }
        defer { publisher.cancel() }

        try await waitUntil(timeout: .seconds(30), message: "confirms before the restart") {
            progress.withLock(\.confirmed.count) >= 300
        }
        try await runOnThread { try node.stop() }
        let whileDown = progress.withLock(\.confirmed.count)
        try await waitUntil(timeout: .seconds(5), message: "the client to notice") { await !connection.isConnected }
        try await runOnThread { try node.start() }
        try await waitUntil(timeout: .seconds(60), message: "confirms after the restart") {
            progress.withLock(\.confirmed.count) >= whileDown + 300
        }
        progress.withLock { $0.stop = true }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            publisher.cancel()
        }
        await publisher.value
        watchdog.cancel()
        let result = progress.withLock { $0 }
        #expect(await connection.recoveryCount >= 1)
        #expect(result.failedOutcomes > 0, "the restart interrupted the publishing")

        // Every confirmed id is in the queue (a retried one may be there twice: at-least-once).
        let depth = try await connection.checkQueue(queue).messageCount
        #expect(depth >= result.confirmed.count)
        let consumer = try await connection.consume(queue: queue, prefetch: 0)  // unbounded: take them all unacked
        let all = try await Inbox(consumer).take(depth, timeout: .seconds(60))
        let ids = Set(all.compactMap(\.properties.messageId))
        let missing = result.confirmed.subtracting(ids)
        #expect(missing.isEmpty, "confirmed but missing: \(missing.sorted().prefix(10))")
        try await connection.ack(all.last!.tag, multiple: true)
        try await consumer.cancel()
        try await connection.deleteQueue(queue)
        await connection.close()
    }
}
