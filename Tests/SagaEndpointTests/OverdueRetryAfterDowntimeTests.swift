import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// A delayed retry that fell due while the endpoint was down for longer than the deduplication window has
/// not come back yet when the endpoint starts again: its failure count must survive the purge that runs
/// at start, or the retry counts from its first attempt again.
@Suite("A retry overdue after a downtime keeps its failure count", .timeLimit(.minutes(3)))
struct OverdueRetryAfterDowntimeTests {
    // Failed before the fix: the purge at start removed the count (its retry was due over the window ago),
    // so the retry was attempt 1 again and the handler ran once more than the retries allow.
    @Test("a retry due during a downtime longer than the window ends in the error queue after its retries")
    func overdueAfterDowntime() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("downfail")
        let calls = Tally()
        func start() -> Task<Void, any Error> {
            harness.startEndpoint(Explode.registry(calls: calls), queues: ["downfail"], database: "downfail") {
                $0.immediateRetries = 0
                $0.delayedRetries = [.seconds(1), .seconds(1)]
                $0.deduplicationWindow = .milliseconds(500)
                $0.housekeepingInterval = .milliseconds(100)
            }
        }
        let first = start()
        try await harness.send(Explode(note: "down"), to: "downfail", messageId: "downfail-1")
        try await waitUntil(timeout: .seconds(20), message: "the first retry parked") {
            try await harness.rowCount("downfail", "timeouts") == 1
        }
        await harness.stop(first)
        #expect(calls.count == 1)
        // Down until its retry has been due for longer than the window.
        try await Task.sleep(for: .seconds(3))

        let second = start()
        let copies = try await harness.errorMessages(of: "downfail", count: 1, timeout: .seconds(25))
        let copy = try #require(copies.first, "no error-queue copy: calls so far \(calls.count)")
        #expect(copy.intHeader("x-attempts") == 3)
        #expect(calls.count == 3)
        await harness.stop(second)
        await harness.tearDown()
    }
}
