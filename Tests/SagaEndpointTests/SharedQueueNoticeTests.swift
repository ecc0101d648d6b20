import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Testing

/// Processes consuming one queue must share one database file: an endpoint starting on a queue that
/// already has consumers says so, with its database's absolute path, so a second process started from
/// another folder (its own relative `saga.sqlite`) can be noticed.
@Suite("An endpoint joining a queue that already has consumers")
struct SharedQueueNoticeTests {
    // Found by an operations review: a second `run` started from another folder competed for the queues
    // with its own database (transfers stalled, replies discarded as "no saga instance"), and nothing was
    // logged at start.
    @Test("it logs a notice naming the queue, the consumers and its database's absolute path")
    func noticeWithAbsolutePath() async throws {
        let harness = try await EndpointHarness.make()
        let first = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                          database: "first")
        try await waitUntil(timeout: .seconds(30)) { try await harness.connection.checkQueue("transfers").consumerCount == 1 }
        let log = LogCapture()
        let folder = FileManager.default.currentDirectoryPath
        let relative = "shared-queue-\(UUID().uuidString).sqlite"
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: "\(folder)/\(relative)\(suffix)") }
        }
        let second = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                          database: "unused", logger: log.logger(label: "second"),
                                          configure: { $0.databasePath = relative })
        let running = Task { try await second.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "started") { second.isReady }
        let notice = log.log.entries.first { $0.message.hasPrefix("the input queue already has consumers") }
        #expect(notice?.level == .notice, "\(log.tail(20))")
        #expect(notice?.metadata["queue"] == "transfers")
        #expect(notice?.metadata["consumers"] == "1")
        #expect(notice?.metadata["database"] == "\(folder)/\(relative)")
        await harness.stop(running)
        await harness.stop(first)
        await harness.tearDown()
    }
}
