import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// SIGTERM: the endpoint stops consuming, finishes the batch in flight, and exits 0 within seconds;
/// every message is either processed and acknowledged, or back in the queue.
@Suite("Graceful shutdown (fixture process)", .timeLimit(.minutes(6)))
struct GracefulShutdownTests {
    static let total = 3000

    @Test("SIGTERM mid-stream: exit 0 within seconds, nothing lost, nothing processed twice")
    func sigtermMidStream() async throws {
        let harness = try await EndpointHarness.make()
        let requests = try (0..<Self.total).map { index in
            PublishRequest.toQueue("counters", AMQPMessage(
                body: try MessageCoding.encode(CounterSaga.Increment(counterId: "c-\(index % 3)")),
                properties: BasicProperties(contentType: "application/json", deliveryMode: .persistent,
                                            messageId: "inc-\(index)", type: CounterSaga.Increment.messageType)))
        }
        let confirmed = await harness.connection.publish(requests).filter(\.isConfirmed).count
        #expect(confirmed == Self.total)

        let arguments = ["--batch-size", "10"]
        let first = try await harness.startedFixture(app: "counter", database: "counters", extraArguments: arguments)
        try await waitUntil(timeout: .seconds(20)) { try await harness.rowCount("counters", "inbox") >= 100 }
        let signalled = ContinuousClock.now
        #expect(try await harness.terminate(first, timeout: .seconds(10)) == 0)
        #expect(ContinuousClock.now - signalled < .seconds(5))
        #expect(first.errorOutput().contains("graceful shutdown"))

        let processed = try await harness.rowCount("counters", "inbox")
        #expect(processed < Self.total, "the signal came mid-stream")
        #expect(try await sum(harness) == processed, "each processed message counted once")
        // Everything else is back in the queue (acked ones are not: no processed message comes back).
        try await waitUntil(timeout: .seconds(30), message: "unprocessed messages did not return to the queue") {
            try await harness.depth("counters") == Self.total - processed
        }

        let second = try await harness.startedFixture(app: "counter", database: "counters", extraArguments: arguments)
        try await waitUntil(timeout: .seconds(40), poll: .milliseconds(200)) {
            try await harness.rowCount("counters", "inbox") == Self.total
        }
        #expect(try await harness.terminate(second) == 0)
        #expect(try await sum(harness) == Self.total)
        #expect(try await harness.depth("counters") == 0)
        #expect(try await harness.depth("counters.error") == 0)
        await harness.tearDown()
    }

    private func sum(_ harness: EndpointHarness) async throws -> Int {
        try await harness.withStore("counters") { store in
            try store.listSagas(type: CounterSaga.sagaType).reduce(0) {
                $0 + (try MessageCoding.decode(CounterSaga.self, from: $1.state, messageType: "Counter").count)
            }
        }
    }
}
