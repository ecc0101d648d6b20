import Foundation
import Testing
@testable import SagaStore

/// A parked retry whose due time passed while nobody took it (the endpoint was down for longer than the
/// deduplication window, or the timeout poller is that far behind) has not come back yet: its failure count
/// must still be there when it does, or it starts again from its first attempt.
@Suite struct OverdueParkedFailureTests {
    // Failed before the fix: the purge went by the due time alone and removed the count of a retry that was
    // still parked, overdue, in the timeouts table.
    @Test func countOfAnOverdueParkedRetryIsKeptUntilItIsTaken() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        try store.recordFailure(messageId: "overdue", error: "boom", at: date(0))
        let parked = TimeoutRecord(timeoutId: "retry:overdue:1", sagaType: "", correlationId: "overdue",
                                   dueAt: date(5), messageType: "M", body: Data(), createdAt: date(0))
        try store.scheduleTimeout(parked)
        try store.markRetry(messageId: "overdue", dueAt: date(5))

        // Housekeeping at a restart long after the retry fell due, before the poller took the row.
        #expect(try store.purgeFailures(olderThan: date(20)) == 0)
        #expect(try store.failure(messageId: "overdue")?.attempts == 1)

        // Taken (and withdrawn, say: its saga completed): nothing comes back for the count any more.
        #expect(try store.deleteTimeout(TimeoutKey(sagaType: "", correlationId: "overdue", timeoutId: "retry:overdue:1")))
        #expect(try store.purgeFailures(olderThan: date(20)) == 1)
        #expect(try store.failure(messageId: "overdue") == nil)
    }
}
