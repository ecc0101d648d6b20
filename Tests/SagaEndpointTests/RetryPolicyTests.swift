import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// A handler that keeps failing is retried at once (requeue), then after delays (parked durably in the
/// timeouts table), then moved to the error queue with the attempts and the original message id.
@Suite("Immediate and delayed retries, then the error queue", .timeLimit(.minutes(6)))
struct RetryPolicyTests {
    @Test("a handler that always throws runs 1 + 2 immediate + 2 delayed times, then goes to the error queue")
    func alwaysFailingHandler() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("explosions")
        let calls = Tally()
        let endpoint = harness.startEndpoint(Explode.registry(calls: calls), queues: ["explosions"], database: "explode") {
            $0.immediateRetries = 2
            $0.delayedRetries = [.milliseconds(300), .milliseconds(600)]
        }
        let started = ContinuousClock.now
        try await harness.send(Explode(note: "boom"), to: "explosions", messageId: "explode-1")

        let copies = try await harness.errorMessages(of: "explosions", count: 1, timeout: .seconds(20))
        let elapsed = ContinuousClock.now - started
        let copy = try #require(copies.first)
        #expect(copy.properties.messageId == "explode-1")
        #expect(copy.properties.type == Explode.messageType)
        #expect(copy.intHeader("x-attempts") == 5)
        #expect(copy.header("x-error-reason")?.contains("exploded on purpose") == true)
        #expect(copy.header("x-original-queue") == "explosions")
        #expect(copy.header("x-first-failure") != nil && copy.header("x-last-failure") != nil)
        #expect(try copy.decode(Explode.self).note == "boom")
        #expect(calls.count == 5)
        #expect(elapsed >= .milliseconds(900), "the delayed retries waited their delays")

        // Nothing is left behind: no parked retry, no failure count, no further attempt.
        try await Task.sleep(for: .milliseconds(800))
        #expect(calls.count == 5)
        #expect(try await harness.rowCount("explode", "timeouts") == 0)
        #expect(try await harness.rowCount("explode", "failures") == 0)
        #expect(try await harness.rowCount("explode", "inbox") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("a delayed retry survives a restart of the endpoint and then succeeds")
    func delayedRetrySurvivesRestart() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("flaky")
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { explode, context in
            calls.increment()
            // Fails twice (the immediate retry and the first delayed one), then succeeds.
            if calls.count <= 2 { throw Explode.Failure() }
            try context.send(explode, to: "flaky.out")
        }
        try await harness.declareQueue("flaky.out")
        // The first delay outlasts stopping the endpoint even on a loaded machine (with 1 s, a slow stop
        // let the retry fire before the endpoint was down, and the count below was 3).
        let configure: (inout EndpointConfiguration) -> Void = {
            $0.immediateRetries = 1
            $0.delayedRetries = [.seconds(4), .seconds(1)]
        }
        var endpoint = harness.startEndpoint(registry, queues: ["flaky"], database: "flaky", configure: configure)
        try await harness.send(Explode(note: "once"), to: "flaky", messageId: "flaky-1")
        try await waitUntil(timeout: .seconds(30)) { try await harness.rowCount("flaky", "timeouts") == 1 }
        await harness.stop(endpoint)
        #expect(calls.count == 2)

        endpoint = harness.startEndpoint(registry, queues: ["flaky"], database: "flaky", configure: configure)
        let out = try await harness.receive(from: "flaky.out", count: 1, timeout: .seconds(20))
        #expect(out.map(\.properties.messageId) == [outgoingId("flaky-1", "handler:" + Explode.messageType, "1")])
        #expect(calls.count == 3)
        #expect(try await harness.rowCount("flaky", "timeouts") == 0)
        #expect(try await harness.rowCount("flaky", "inbox", where: "message_id = 'flaky-1'") == 1)
        #expect(try await harness.depth("flaky.error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
