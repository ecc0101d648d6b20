import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// SIGTERM while a backlog of due rows (timeouts that fell due during downtime, parked retries) drains:
/// the endpoint finishes what it has taken and stops; the rest stays due in SQLite for the next start.
@Suite("Graceful shutdown with a backlog of due rows (fixture process)", .timeLimit(.minutes(4)))
struct ShutdownWithDueBacklogTests {
    static let total = 100_000

    // Failed before: the due-row poller went on handing rows to the batch loop after the shutdown had
    // begun, and the loop (which ends once its queue is empty) took them, so the endpoint drained the
    // whole backlog before exiting (100,000 rows here, 10 at a time), for a SIGTERM that should take a moment.
    @Test("SIGTERM while due rows are being drained: exit 0 within seconds, the rest stays due")
    func sigtermDuringDueBacklog() async throws {
        let harness = try await EndpointHarness.make()
        let past = Date().addingTimeInterval(-60)
        // Parked retries of Increment, as `MessageTranslation.deferral` stores them, all overdue.
        try await harness.withStore("counters") { store in
            try store.transaction { store in
                for index in 0..<Self.total {
                    let messageId = "inc-\(index)"
                    try store.scheduleTimeout(TimeoutRecord(
                        timeoutId: "retry:\(messageId):4", sagaType: "", correlationId: messageId, dueAt: past,
                        messageType: CounterSaga.Increment.messageType,
                        body: try MessageCoding.encode(CounterSaga.Increment(counterId: "c-\(index % 50)")),
                        headers: ["x-saga-original-message-id": messageId, "x-saga-original-queue": "counters",
                                  "x-saga-retry-attempt": "4"],
                        createdAt: past))
                }
            }
        }
        let fixture = try await harness.startedFixture(app: "counter", database: "counters",
                                                       extraArguments: ["--batch-size", "10"])
        try await waitUntil(timeout: .seconds(60)) { try await harness.rowCount("counters", "inbox") >= 100 }
        let atSignal = try await harness.rowCount("counters", "inbox")
        let signalled = ContinuousClock.now
        let status = try await harness.terminate(fixture, timeout: .seconds(120))
        let took = ContinuousClock.now - signalled
        #expect(status == 0)
        #expect(took < .seconds(10), "graceful shutdown took \(took)")

        let processed = try await harness.rowCount("counters", "inbox")
        let left = try await harness.rowCount("counters", "timeouts")
        // What had been taken when the signal came (at most the poller's 500 rows) is finished, no more.
        #expect(processed - atSignal <= 1_000, "\(processed - atSignal) due rows processed after the signal")
        #expect(processed + left == Self.total, "each row either processed or still due")
        let counted = try await harness.withStore("counters") { store in
            try store.listSagas(type: CounterSaga.sagaType).reduce(0) {
                $0 + (try MessageCoding.decode(CounterSaga.self, from: $1.state, messageType: "Counter").count)
            }
        }
        #expect(counted == processed, "each processed row counted once")
        await harness.tearDown()
    }
}
