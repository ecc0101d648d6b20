// A shutdown that runs out of time cancels the endpoint, and with it a stateless handler still waiting
// (for an HTTP API, say): the handler throws `CancellationError`. That is not the message's fault.
// Failed before: it was counted as a failed attempt in SQLite ("handler failed; retrying"), so each
// deploy that hit the shutdown limit brought every message it cut short one step closer to the error
// queue, without its handler ever failing.
import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

@Suite("A handler cut short by the endpoint's cancellation", .timeLimit(.minutes(3)))
struct ShutdownCancellationTests {
    @Test("its message goes back to the queue with no failed attempt counted")
    func cancelledHandlerIsNotAFailure() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("slow")
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in
            calls.increment()
            try await Task.sleep(for: .seconds(120))   // an HTTP call that takes its time
        }
        let endpoint = harness.startEndpoint(registry, queues: ["slow"], database: "slow")
        try await harness.send(Explode(note: "slow"), to: "slow", messageId: "slow-1")
        try await waitUntil(timeout: .seconds(20), message: "the handler did not start") { calls.count == 1 }

        await harness.stop(endpoint)   // cancels the endpoint, as a ServiceGroup does past its shutdown limit

        #expect(try await harness.rowCount("slow", "failures") == 0, "no failed attempt counted")
        try await waitUntil(timeout: .seconds(20), message: "the message did not go back to its queue") {
            try await harness.depth("slow") == 1
        }
        #expect(try await harness.depth("slow.error") == 0)
        await harness.tearDown()
    }
}
