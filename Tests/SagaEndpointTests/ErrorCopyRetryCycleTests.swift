import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import Testing

/// A message that used up its retries keeps its failure count until its error-queue copy is confirmed.
/// Failed before: the count was cleared when the copy was planned, so when the broker did not take the
/// copy (the error queue deleted, or full with `reject-publish`) the redelivered message started its
/// retries from the beginning: every round ran the handler again through all the immediate and delayed
/// retries (minutes with the default delays) before the next copy was even tried.
@Suite("Error-queue copy and the retry count", .timeLimit(.minutes(3)))
struct ErrorCopyRetryCycleTests {
    @Test("a message whose error-queue copy was not confirmed goes to the error queue without a new retry cycle")
    func noNewRetryCycle() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("fragile")
        let calls = Tally()
        let metrics = TestMetrics()
        let endpoint = harness.makeEndpoint(Explode.registry(calls: calls), queues: ["fragile"], database: "fragile",
                                            metrics: metrics) {
            $0.immediateRetries = 2
            $0.delayedRetries = []
        }
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        // The copy (mandatory) comes back unroutable until the error queue exists again.
        _ = try await harness.connection.deleteQueue("fragile.error")

        try await harness.send(Explode(note: "boom"), to: "fragile", messageId: "fragile-1")
        try await waitUntil(timeout: .seconds(20), message: "the copy came back unconfirmed three times") {
            ((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0) >= 3
        }
        // 1 + 2 immediate retries, then the copy; each round since then ran the handler once more (it may
        // succeed now), not three times (one more run may be under way for a round not counted yet).
        let runsWhileMissing = calls.count
        let unconfirmed = (try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0
        #expect(runsWhileMissing <= 4 + Int(unconfirmed), "handler runs \(runsWhileMissing), unconfirmed copies \(unconfirmed)")

        try await harness.connection.declareQueue(QueueDeclaration(name: "fragile.error"))
        let copies = try await harness.errorMessages(of: "fragile", count: 1, timeout: .seconds(20))
        let copy = try #require(copies.first)
        #expect(copy.properties.messageId == "fragile-1")
        #expect((copy.intHeader("x-attempts") ?? 0) > 3, "the attempts count on: \(copy.intHeader("x-attempts") ?? 0)")
        try await waitUntil(timeout: .seconds(10), message: "the delivery acknowledged") {
            try await harness.depth("fragile") == 0
        }
        try await Task.sleep(for: .milliseconds(300))
        // Cleared once the copy was confirmed, so a replay of the copy starts afresh.
        #expect(try await harness.rowCount("fragile", "failures") == 0)
        #expect(calls.count <= 4 + Int((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0))
        await harness.stop(running)
        await harness.tearDown()
    }

    // Failed before: every round the endpoint itself handed the message back (its copy not confirmed) was
    // counted as a delivery that may have crashed the process, so after `maxDeliveries` rounds (about 26 s
    // with the defaults) the message went to the error queue as a PoisonMessage, "the process may be
    // crashing on it", its handler's error and attempts gone, and its handler no longer ran.
    @Test("rounds of an unconfirmed copy do not make the message a poison message")
    func unconfirmedRoundsAreNotCrashes() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("brittle")
        let calls = Tally()
        let metrics = TestMetrics()
        let endpoint = harness.makeEndpoint(Explode.registry(calls: calls), queues: ["brittle"], database: "brittle",
                                            metrics: metrics) {
            $0.immediateRetries = 0
            $0.delayedRetries = []
            $0.maxDeliveries = 3
        }
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        _ = try await harness.connection.deleteQueue("brittle.error")

        try await harness.send(Explode(note: "boom"), to: "brittle", messageId: "brittle-1")
        try await waitUntil(timeout: .seconds(20), message: "the copy came back unconfirmed five times") {
            ((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0) >= 5
        }
        try await harness.connection.declareQueue(QueueDeclaration(name: "brittle.error"))
        let copies = try await harness.errorMessages(of: "brittle", count: 1, timeout: .seconds(20))
        let copy = try #require(copies.first)
        #expect(copy.properties.headers?["x-error-type"] != "PoisonMessage", "\(copy.properties.headers ?? [:])")
        #expect(copy.header("x-error-reason")?.contains("exploded on purpose") == true, "\(copy.properties.headers ?? [:])")
        #expect(calls.count >= 5, "the handler ran \(calls.count) times in five rounds")
        await harness.stop(running)
        await harness.tearDown()
    }

    // Those rounds are excused, but not a poison message's: its next delivery would be processed again
    // (for a message that crashes the process, a crash every other round).
    @Test("a poison message whose copy is not confirmed stays diverted; its handler does not run again")
    func poisonStaysPoison() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("toxic")
        let calls = Tally()
        let metrics = TestMetrics()
        // A redelivery, as after a crash: taken by another consumer and handed back before the endpoint
        // starts. (Immediate retries made the redeliveries here before; they are processed again in process
        // now and are not counted.)
        // Full from the start (deleted, the endpoint would declare it again as it starts): the copy is nacked.
        _ = try await harness.connection.deleteQueue("toxic.error")
        try await harness.connection.declareQueue(QueueDeclaration(
            name: "toxic.error", arguments: ["x-max-length": .int64(0), "x-overflow": .string("reject-publish")]))
        try await harness.send(Explode(note: "boom"), to: "toxic", messageId: "toxic-1")
        do {
            let other = try await harness.connection.consume(queue: "toxic", prefetch: 1)
            var taken = other.deliveries.makeAsyncIterator()
            let first = try #require(try await taken.next())
            // Cancelled first, so that the message handed back is not delivered to it again.
            try await other.cancel()
            try await harness.connection.nack(first.tag, requeue: true)
        }
        let endpoint = harness.makeEndpoint(Explode.registry(calls: calls), queues: ["toxic"], database: "toxic",
                                            metrics: metrics) {
            $0.immediateRetries = 10
            $0.delayedRetries = []
            // The redelivery (the second delivery) is past the limit.
            $0.maxDeliveries = 1
        }
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }

        func unconfirmed() -> Int { Int((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0) }
        try await waitUntil(timeout: .seconds(20), message: "the poison copy came back unconfirmed") { unconfirmed() >= 1 }
        let runs = calls.count
        try await waitUntil(timeout: .seconds(20), message: "three more rounds") { unconfirmed() >= 4 }
        #expect(calls.count == runs, "the handler ran again: \(calls.count) runs, \(runs) when it was diverted")

        _ = try await harness.connection.deleteQueue("toxic.error")
        try await harness.connection.declareQueue(QueueDeclaration(name: "toxic.error"))
        let copy = try #require(try await harness.errorMessages(of: "toxic", count: 1, timeout: .seconds(20)).first)
        #expect(copy.properties.headers?["x-error-type"] == "PoisonMessage")
        await harness.stop(running)
        await harness.tearDown()
    }
}
