import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// A message that waited for its saga (`retryLater`) and then fails in its handler gets the handler's
/// retries in full: the waits are no handler failures.
@Suite("retryLater, then a failing handler", .timeLimit(.minutes(3)))
struct RetryLaterThenFailureTests {
    struct WaitThenFail: Saga {
        static let sagaType = "WaitThenFail"
        var id: String

        struct Begin: Message { static let messageType = "wtf.Begin"; var id: String }
        struct Act: Message { static let messageType = "wtf.Act"; var id: String }
        struct Boom: Error {}

        static func define(_ saga: inout SagaDefinition<WaitThenFail>) {}

        static func registry(calls: Tally) -> HandlerRegistry {
            var registry = HandlerRegistry()
            registry.register(WaitThenFail.self) { saga in
                saga.startedBy(Begin.self, correlatedBy: \.id) { begin, _ in WaitThenFail(id: begin.id) }
                saga.handles(Act.self, correlatedBy: \.id,
                             whenNotFound: .retryLater(attempts: 3, delay: .seconds(1))) { _, _, _ in
                    calls.increment()
                    throw Boom()
                }
            }
            return registry
        }
    }

    // Failed before: the wait was counted as the handler's first failed attempt, so the handler ran 1 + 1
    // immediate + 1 delayed times, not 1 + 2 + 1, and the copy's x-attempts said 4 runs.
    @Test("the handler runs 1 + immediateRetries + delayedRetries times after its saga started, and x-attempts says so")
    func waitsAreNotHandlerAttempts() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("wait-then-fail")
        let calls = Tally()
        // Saga handlers inside the transaction: one run per attempt (ahead of it, a run may be repeated).
        let endpoint = harness.startEndpoint(WaitThenFail.registry(calls: calls), queues: ["wait-then-fail"],
                                             database: "wtf") {
            $0.immediateRetries = 2
            $0.delayedRetries = [.milliseconds(300)]
            $0.handlersAheadOfCommit = false
        }
        try await harness.send(WaitThenFail.Act(id: "w"), to: "wait-then-fail", messageId: "act-w")
        try await waitUntil(timeout: .seconds(20)) {
            try await harness.rowCount("wtf", "timeouts", where: "timeout_id LIKE 'retry:act-w:%'") == 1
        }
        try await harness.send(WaitThenFail.Begin(id: "w"), to: "wait-then-fail", messageId: "begin-w")

        let copy = try #require(try await harness.errorMessages(of: "wait-then-fail", count: 1, timeout: .seconds(20)).first)
        #expect(copy.properties.messageId == "act-w")
        #expect(copy.header("x-error-type") == "Boom")
        #expect(calls.count == 4)
        #expect(copy.intHeader("x-attempts") == 4)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
