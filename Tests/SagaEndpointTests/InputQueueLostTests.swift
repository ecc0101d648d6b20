import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import MoneyTransfer
import SagaEndpoint
import Testing

/// An input queue deleted while the endpoint runs (by an operator, or a broker-side policy): before, its
/// consumer ended with a logged error and the endpoint went on "ready" without consuming that queue (and
/// stopped when that was its only queue). Now it reports the queue as not consumed, keeps serving its
/// other queues, and consumes the queue again once it is declared again.
@Suite("An input queue lost while the endpoint runs", .timeLimit(.minutes(3)))
struct InputQueueLostTests {
    @Test("not ready while a queue is gone, the other queues go on, and the queue is consumed again once it is back")
    func deletedThenDeclaredAgain() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("transfers-b")
        let metrics = TestMetrics()
        // A fresh-clone CI run once failed here with the endpoint "not connected" after the deletion and
        // serving nothing for 30 s (not reproduced in many runs since): its log goes with any failure now.
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                            queues: ["transfers", "transfers-b"], database: "sagas", metrics: metrics,
                                            logger: log.logger(label: "endpoint"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        _ = try await harness.connection.deleteQueue("transfers-b")
        try await log.waitUntil(timeout: .seconds(10), message: "not ready once the queue is gone") { !endpoint.isReady }
        let reason = try #require(endpoint.notReadyReason)
        #expect(reason.contains("not consuming transfers-b"), "\(reason); the endpoint's log:\n\(log.tail())")
        #expect(!reason.contains("transfers ("), "the other queue is consumed: \(reason)")
        #expect(try metrics.expectGauge("saga_input_queues_unconsumed").lastValue == 1)

        // The other queue is served meanwhile.
        try await harness.send(TransferRequested(transferId: "t-a", fromAccount: "a", toAccount: "b", amount: 10),
                               to: "transfers", messageId: "req-a")
        try await log.waitUntil(timeout: .seconds(30), message: "the other queue's message processed") {
            try await harness.rowCount("sagas", "inbox") == 1
        }
        // Still not ready a few retries later: it does not flap while the queue is missing.
        try await Task.sleep(for: .seconds(3))
        #expect(!endpoint.isReady)

        try await harness.declareQueue("transfers-b")
        try await log.waitUntil(timeout: .seconds(60), message: "ready again once the queue is back") { endpoint.isReady }
        #expect(try metrics.expectGauge("saga_input_queues_unconsumed").lastValue == 0)
        try await harness.send(TransferRequested(transferId: "t-b", fromAccount: "a", toAccount: "b", amount: 20),
                               to: "transfers-b", messageId: "req-b")
        try await log.waitUntil(timeout: .seconds(30), message: "the queue's message processed after it came back") {
            try await harness.rowCount("sagas", "inbox") == 2
        }
        #expect(running.isCancelled == false)

        await harness.stop(running)
        #expect(try await harness.depth("transfers-b") == 0, "acknowledged")
        await harness.tearDown()
    }

    // Failed before: one queue the broker refused to consume at start (here: guest may not read it; also a
    // queue deleted between the endpoint's declaration and its consume) failed the whole endpoint.
    @Test("a queue refused at start: the endpoint starts without it, not ready, serves the others, and consumes it once it can")
    func refusedAtStart() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("transfers-b")
        func readable(_ pattern: String) async throws {
            _ = try await runOnThread {
                try TestBroker.rabbitmqctl(["set_permissions", "-p", harness.vhost, "guest", ".*", ".*", pattern])
            }
        }
        try await readable("^(?!transfers-b$).*")
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                            queues: ["transfers", "transfers-b"], database: "sagas",
                                            logger: log.logger(label: "endpoint"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "started without the refused queue") {
            endpoint.notReadyReason?.contains("not consuming transfers-b") == true
        }
        try await harness.send(TransferRequested(transferId: "t-a", fromAccount: "a", toAccount: "b", amount: 10),
                               to: "transfers", messageId: "req-a")
        try await log.waitUntil(timeout: .seconds(30), message: "the other queue served") {
            try await harness.rowCount("sagas", "inbox") == 1
        }
        try await readable(".*")
        try await log.waitUntil(timeout: .seconds(60), message: "ready once the queue may be read") { endpoint.isReady }
        try await harness.send(TransferRequested(transferId: "t-b", fromAccount: "a", toAccount: "b", amount: 20),
                               to: "transfers-b", messageId: "req-b")
        try await log.waitUntil(timeout: .seconds(30), message: "the queue served once consumed") {
            try await harness.rowCount("sagas", "inbox") == 2
        }
        await harness.stop(running)
        await harness.tearDown()
    }
}

