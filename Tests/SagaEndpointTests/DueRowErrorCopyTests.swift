import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import Sagas
import Testing

/// A bell whose `Ring` timeout (due at once) always fails, counting its runs.
private struct BellSaga: Saga {
    static let sagaType = "Bell"
    static let queue = "bells"

    var bellId: String

    struct Hang: Message { static let messageType = "test.HangBell"; var bellId: String }
    struct Ring: Message { static let messageType = "test.RingBell" }
    struct Cracked: Error, CustomStringConvertible { var description: String { "the bell is cracked" } }

    static func define(_ saga: inout SagaDefinition<BellSaga>) {
        define(&saga, rings: Tally())
    }

    static func define(_ saga: inout SagaDefinition<BellSaga>, rings: Tally) {
        saga.startedBy(Hang.self, correlatedBy: \.bellId) { hang, context in
            try context.requestTimeout(after: .milliseconds(0), Ring())
            return BellSaga(bellId: hang.bellId)
        }
        saga.handlesTimeout(Ring.self) { _, _, _ in
            rings.increment()
            throw Cracked()
        }
    }

    static func registry(rings: Tally) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(BellSaga.self) { define(&$0, rings: rings) }
        return registry
    }
}

/// A saga timeout (a due row) that used up its retries while its error-queue copy is not confirmed.
@Suite("A due row's error-queue copy that is not confirmed", .timeLimit(.minutes(2)))
struct DueRowErrorCopyTests {
    // Failed before: the row stays due and keeps its failure count, so at every poll of the due rows
    // (200 ms) its handler ran again and another copy went out, for as long as the error queue was
    // missing: a delivery in that state is processed again after a doubling delay (`HeldDeliveries`),
    // a due row had none, and the delayed retries that used to space the rounds out no longer come.
    @Test("its handler does not run again at every poll while the copy is not taken; once it is, the row is gone")
    func dueRowBacksOff() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(BellSaga.queue)
        let rings = Tally()
        let metrics = TestMetrics()
        let endpoint = harness.makeEndpoint(BellSaga.registry(rings: rings), queues: [BellSaga.queue],
                                            database: "bells", metrics: metrics) {
            $0.immediateRetries = 0
            $0.delayedRetries = [.milliseconds(300)]
        }
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        // The copy (mandatory) comes back unroutable until the error queue exists again.
        _ = try await harness.connection.deleteQueue(BellSaga.queue + ".error")
        try await harness.send(BellSaga.Hang(bellId: "b-1"), to: BellSaga.queue)

        func unconfirmed() -> Int { Int((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0) }
        try await waitUntil(timeout: .seconds(20), message: "the first copy came back unconfirmed") { unconfirmed() >= 1 }
        let before = rings.count
        try await Task.sleep(for: .seconds(3))
        let during = rings.count - before
        // With a doubling hold from 100 ms (as a delivery's): about five rounds in 3 s; at every poll, 15.
        #expect(during <= 7, "the timeout handler ran \(during) times in 3 s while its copy was not confirmed")

        try await harness.connection.declareQueue(QueueDeclaration(name: BellSaga.queue + ".error"))
        let copies = try await harness.errorMessages(of: BellSaga.queue, count: 1, timeout: .seconds(20))
        #expect(copies.first?.properties.type == BellSaga.Ring.messageType)
        try await waitUntil(timeout: .seconds(10), message: "the due row deleted") {
            try await harness.rowCount("bells", "timeouts") == 0
        }
        #expect(try await harness.rowCount("bells", "failures") == 0)
        await harness.stop(running)
        await harness.tearDown()
    }

    // Failed before: a row that was due when the endpoint started is counted at every round as one an
    // earlier process may have died on; the rounds of its unconfirmed copy were counted too, so after
    // `maxDeliveries` of them it went to the error queue as a PoisonMessage, its handler's error gone.
    @Test("rounds of an overdue row's unconfirmed copy do not make it a poison message")
    func overdueRowIsNotPoison() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(BellSaga.queue)
        func start(_ metrics: TestMetrics) async throws -> Task<Void, any Error> {
            let endpoint = harness.makeEndpoint(BellSaga.registry(rings: Tally()), queues: [BellSaga.queue],
                                                database: "bells", metrics: metrics) {
                $0.immediateRetries = 0
                $0.delayedRetries = []
                $0.maxDeliveries = 2
            }
            let running = Task { try await endpoint.run() }
            try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
            return running
        }
        func unconfirmed(_ metrics: TestMetrics) -> Int {
            Int((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0)
        }
        let first = TestMetrics()
        var running = try await start(first)
        _ = try await harness.connection.deleteQueue(BellSaga.queue + ".error")
        try await harness.send(BellSaga.Hang(bellId: "b-2"), to: BellSaga.queue)
        try await waitUntil(timeout: .seconds(20), message: "the first copy came back unconfirmed") { unconfirmed(first) >= 1 }
        await harness.stop(running)
        // The endpoint declares a missing error queue at start: this one exists, and takes nothing.
        try await harness.connection.declareQueue(QueueDeclaration(
            name: BellSaga.queue + ".error", arguments: ["x-max-length": .int64(0), "x-overflow": .string("reject-publish")]))

        // The row was due before this endpoint started.
        let second = TestMetrics()
        running = try await start(second)
        try await waitUntil(timeout: .seconds(20), message: "four rounds") { unconfirmed(second) >= 4 }
        _ = try await harness.connection.deleteQueue(BellSaga.queue + ".error")
        try await harness.connection.declareQueue(QueueDeclaration(name: BellSaga.queue + ".error"))
        let copy = try #require(try await harness.errorMessages(of: BellSaga.queue, count: 1, timeout: .seconds(20)).first)
        #expect(copy.properties.headers?["x-error-type"] != "PoisonMessage", "\(copy.properties.headers ?? [:])")
        #expect(copy.header("x-error-reason")?.contains("the bell is cracked") == true, "\(copy.properties.headers ?? [:])")
        await harness.stop(running)
        await harness.tearDown()
    }
}
