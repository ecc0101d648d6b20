import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import MoneyTransfer
import Sagas
import Testing

/// `saga_messages_error_queued_total` counts messages moved to an error queue, and `saga_messages_rejected_total`
/// messages refused: each once, when its error-queue copy is there. Failed before: both were counted (and
/// the "moved to the error queue" line logged) when the copy was planned, so while the copies were not
/// confirmed (the error queue deleted, or full with `reject-publish`) every round of the same message
/// counted, and logged at warning or error level, again: an alert on the counters fired while the error
/// queue stayed empty.
@Suite("Error-queue counts", .timeLimit(.minutes(3)))
struct ErrorQueueCountingTests {
    @Test("a message whose error-queue copy is not confirmed is counted and logged once, when the copy is")
    func countedOnceConfirmed() async throws {
        let harness = try await EndpointHarness.make()
        let metrics = TestMetrics()
        let capture = LogCapture()
        let endpoint = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)), queues: ["transfers"],
                                            database: "sagas", metrics: metrics,
                                            logger: capture.logger(label: "error-queue-counts", level: .info))
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        // The copies (mandatory) come back unroutable until the error queue exists again.
        _ = try await harness.connection.deleteQueue("transfers.error")

        // A type nobody handles (rejected), and a body its handler cannot decode (failed, error-queued).
        try await harness.sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: "unknown-1",
            type: "NobodyHandlesThis"), to: "transfers")
        try await harness.sendRaw(Data("{not json".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: "broken-1",
            type: TransferRequested.messageType), to: "transfers")
        try await waitUntil(timeout: .seconds(20), message: "the copies came back unconfirmed a few times") {
            ((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0) >= 6
        }
        func counter(_ label: String) -> Int64 { (try? metrics.expectCounter(label))?.totalValue ?? 0 }
        #expect(counter("saga_messages_error_queued_total") == 0, "nothing is in an error queue yet")
        #expect(counter("saga_messages_rejected_total") == 0, "nothing is in an error queue yet")
        func moveLines() -> Int {
            capture.tail(100_000).split(separator: "\n")
                .filter { $0.contains("moved to the error queue") || $0.contains("rejected to the error queue") }.count
        }
        #expect(moveLines() == 0, "\(capture.tail(20))")

        try await harness.connection.declareQueue(QueueDeclaration(name: "transfers.error"))
        try await waitUntil(timeout: .seconds(30), message: "both copies in the error queue") {
            let copies = try await harness.depth("transfers.error")
            let left = try await harness.depth("transfers")
            return copies == 2 && left == 0
        }
        try await capture.waitUntil(timeout: .seconds(10), message: "counted once confirmed") {
            counter("saga_messages_error_queued_total") == 1 && counter("saga_messages_rejected_total") == 1
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(counter("saga_messages_error_queued_total") == 1)
        #expect(counter("saga_messages_rejected_total") == 1)
        #expect(moveLines() == 2, "\(capture.tail(20))")
        await harness.stop(running)
        await harness.tearDown()
    }
}
