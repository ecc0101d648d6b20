import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// Endpoints sharing a queue and a SQLite file never lose an update; a busy database or a lost
/// optimistic race is a typed, retryable error that is retried, never dead-lettered.
@Suite("Concurrent endpoints on one queue and one SQLite file", .timeLimit(.minutes(6)))
struct ConcurrencyTests {
    static let counters = 10
    static let increments = 2000

    @Test("two endpoint processes, 2,000 increments over 10 counters: every count is exact")
    func twoProcessesLoseNoUpdate() async throws {
        let harness = try await EndpointHarness.make()
        let arguments = ["--batch-size", "20"]
        let environment = ["LOG_LEVEL": "debug"]
        let one = try await harness.startedFixture(app: "counter", database: "counters", environment: environment,
                                                   extraArguments: arguments + ["--name", "one"])
        let two = try await harness.startedFixture(app: "counter", database: "counters", environment: environment,
                                                   extraArguments: arguments + ["--name", "two"])
        let requests = try (0..<Self.increments).map { index in
            PublishRequest.toQueue("counters", AMQPMessage(
                body: try MessageCoding.encode(CounterSaga.Increment(counterId: "c-\(index % Self.counters)")),
                properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent,
                                            messageId: "inc-\(index)", type: CounterSaga.Increment.messageType)))
        }
        let confirmed = await harness.connection.publish(requests).filter(\.isConfirmed).count
        #expect(confirmed == Self.increments)

        try await waitUntil(timeout: .seconds(60), poll: .milliseconds(250)) {
            try await harness.rowCount("counters", "inbox") == Self.increments
        }
        #expect(try await harness.terminate(one) == 0)
        #expect(try await harness.terminate(two) == 0)

        let counts = try await harness.withStore("counters") { store in
            try store.listSagas(type: CounterSaga.sagaType).map {
                ($0.correlationId, try MessageCoding.decode(CounterSaga.self, from: $0.state, messageType: "Counter").count,
                 $0.version)
            }
        }
        #expect(counts.count == Self.counters)
        for (id, count, version) in counts {
            #expect(count == Self.increments / Self.counters, "counter \(id)")
            #expect(version == count, "one version per increment of \(id)")
        }
        #expect(try await harness.depth("counters") == 0)
        #expect(try await harness.depth("counters.error") == 0)
        // Both processes took part.
        for fixture in [one, two] {
            let processed = fixture.errorLines().filter { $0.contains("message processed") }.count
            #expect(processed > 0)
        }
        await harness.tearDown()
    }

    // Found by a library user's review: the counter went up when a due row was read, and with two
    // processes on one file both read most rows (3,676 counted for 2,000 timeouts).
    @Test("two endpoints on one database: each saga timeout is counted fired once")
    func timeoutsCountedOnce() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(OrderSaga.queue)
        try await harness.declareQueue(OrderSaga.outQueue)
        let metrics = [TestMetrics(), TestMetrics()]
        let endpoints = metrics.map {
            harness.startEndpoint(OrderSaga.registry(), queues: [OrderSaga.queue], database: "orders", metrics: $0)
        }
        let orders = 300
        let requests = try (0..<orders).map { index in
            PublishRequest.toQueue(OrderSaga.queue, AMQPMessage(
                body: try MessageCoding.encode(OrderSaga.Placed(orderId: "o-\(index)", remindAfterMs: 500)),
                properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent,
                                            messageId: "placed-\(index)", type: OrderSaga.Placed.messageType)))
        }
        #expect(await harness.connection.publish(requests).filter(\.isConfirmed).count == orders)
        try await waitUntil(timeout: .seconds(60), poll: .milliseconds(250)) {
            try await harness.depth(OrderSaga.outQueue) == orders
        }
        // The last due rows the other endpoint read are withdrawn by now.
        try await Task.sleep(for: .milliseconds(500))
        for endpoint in endpoints { await harness.stop(endpoint) }
        let fired = try metrics.map { try $0.expectCounter("saga_timeouts_fired_total").totalValue }
        #expect(fired.reduce(0, +) == orders, "per endpoint: \(fired)")
        #expect(try await harness.depth(OrderSaga.outQueue) == orders, "one reminder per order")
        await harness.tearDown()
    }

    @Test("a database locked by another process: messages are retried (not error-queued) and counted once")
    func busyDatabaseIsRetried() async throws {
        let harness = try await EndpointHarness.make()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let metrics = TestMetrics()
        // Create the file and its schema before the lock is taken.
        _ = try await harness.rowCount("busy", "sagas")
        let lockHit: @Sendable () -> Bool = {
            ((try? metrics.expectCounter("saga_messages_retried_total").totalValue) ?? 0) > 0
        }
        // Another writer holds the lock until the endpoint ran into it (and a little longer).
        let locked = Task {
            try await harness.withStore("busy") { store in
                try store.transaction { _ in
                    let deadline = Date().addingTimeInterval(30)
                    while !lockHit(), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
                    Thread.sleep(forTimeInterval: 0.5)
                }
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        let endpoint = harness.startEndpoint(registry, queues: ["counters"], database: "busy", metrics: metrics) {
            $0.databaseBusyTimeout = .milliseconds(100)
        }
        for index in 0..<20 {
            try await harness.send(CounterSaga.Increment(counterId: "c-busy"), to: "counters", messageId: "busy-\(index)")
        }
        try await locked.value
        try await waitUntil(timeout: .seconds(15)) {
            try await harness.state(CounterSaga.self, "c-busy", in: "busy")?.count == 20
        }
        #expect(lockHit(), "the lock was hit")
        #expect(try await harness.depth("counters.error") == 0)
        #expect(try await harness.rowCount("busy", "failures") == 0, "a transient failure is not a failed attempt")
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
