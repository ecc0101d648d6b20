import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// Housekeeping removes the failure counts of messages not seen for the deduplication window. A message
/// parked for a delayed retry is not seen while it waits, but its count still matters: removed, the retry
/// started again from its first attempt, parked again, and the message never reached the error queue.
@Suite("A parked retry keeps its failure count through housekeeping", .timeLimit(.minutes(3)))
struct FailurePurgeDuringDelayedRetryTests {
    // Failed before the fix: with a delayed retry longer than the window, the count was purged during
    // every wait, each retry was attempt 1 again, and no error-queue copy ever came.
    @Test("a delayed retry longer than the deduplication window still ends in the error queue")
    func delayLongerThanWindow() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("slowfail")
        let calls = Tally()
        let endpoint = harness.startEndpoint(Explode.registry(calls: calls), queues: ["slowfail"], database: "slowfail") {
            $0.immediateRetries = 0
            $0.delayedRetries = [.seconds(2), .seconds(2)]
            // Purged every pass: a failure count older than half a second goes, unless its message is parked.
            $0.deduplicationWindow = .milliseconds(500)
            $0.housekeepingInterval = .milliseconds(100)
        }
        try await harness.send(Explode(note: "late"), to: "slowfail", messageId: "slowfail-1")

        let copies = try await harness.errorMessages(of: "slowfail", count: 1, timeout: .seconds(25))
        let copy = try #require(copies.first, "no error-queue copy: calls so far \(calls.count)")
        #expect(copy.properties.messageId == "slowfail-1")
        #expect(copy.intHeader("x-attempts") == 3)
        #expect(calls.count == 3)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
