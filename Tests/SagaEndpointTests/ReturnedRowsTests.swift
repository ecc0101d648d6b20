import Testing
@testable import SagaEndpoint

/// `ReturnedRows` keeps one clock per row and answer: how long the broker has returned it (for
/// `unroutableTimeout`) or refused it (for `refusedTimeout`), as this process saw it.
@Suite("Returned and refused outbox rows' clocks")
struct ReturnedRowsTests {
    @Test("a refusal clock runs from the first refusal; a change of answer starts the clock again")
    func clocks() {
        var rows = ReturnedRows()
        let start = ContinuousClock.now
        #expect(rows.refused(1, messageId: "m", now: start) == start)
        #expect(rows.refused(1, messageId: "m", now: start + .seconds(10)) == start, "refused since the first refusal")
        #expect(!rows.mayResend(1, messageId: "m", now: start + .seconds(15), every: .seconds(10)), "sent 5 s ago")
        #expect(rows.mayResend(1, messageId: "m", now: start + .seconds(20), every: .seconds(10)))
        // Returned now (the full queue was deleted): its return clock starts here, and so would a new
        // refusal clock after it.
        #expect(rows.returned(1, messageId: "m", now: start + .seconds(20)) == start + .seconds(20))
        #expect(rows.returned(1, messageId: "m", now: start + .seconds(30)) == start + .seconds(20))
        #expect(rows.refused(1, messageId: "m", now: start + .seconds(40)) == start + .seconds(40))
        rows.forget([1])
        #expect(rows.count == 0)
        #expect(rows.refused(1, messageId: "m", now: start + .seconds(50)) == start + .seconds(50), "forgotten: a new clock")
    }

    // Failed before (keyed by seq alone): the new row inherited the old one's refusal clock and its wait.
    @Test("a row under a number SQLite gave again (the old row purged) gets a clock of its own")
    func reusedSeq() {
        var rows = ReturnedRows()
        let start = ContinuousClock.now
        // Refused, then dispatched by another process: not forgotten here until the prune.
        #expect(rows.refused(7, messageId: "old", now: start) == start)
        let later = start + .seconds(3_600)
        #expect(rows.mayResend(7, messageId: "new", now: later - .seconds(3_599), every: .seconds(10)),
                "the new row never waited")
        #expect(rows.refused(7, messageId: "new", now: later) == later, "refused since its own first refusal")
        #expect(!rows.mayResend(7, messageId: "new", now: later + .seconds(5), every: .seconds(10)))
        #expect(rows.returned(8, messageId: "a", now: start) == start)
        #expect(rows.returned(8, messageId: "b", now: later) == later)
    }
}
