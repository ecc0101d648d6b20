@testable import SagaEndpoint
import Testing

/// The watch that turns batches failing on another connection's write lock into "not writable".
@Suite("DatabaseLockWatch")
struct DatabaseLockWatchTests {
    // Found by an operations review: with a `sqlite3` session holding the lock, the endpoint said "not
    // writable" about 20-25 s into it, not after the three busy timeouts (15 s) the README and the limit
    // promise, and its reason said "held its write lock for 15 s" then. The first failure was taken as the
    // lock's start, though that batch had waited a whole busy timeout for it already: it took four.
    @Test("three failed busy waits in a row reach the limit of three busy timeouts, counted from the first wait")
    func threeBusyTimeoutsReachTheLimit() {
        let watch = DatabaseLockWatch()
        let start = ContinuousClock.now
        let busy = Duration.seconds(5), limit = busy * 3, gap = busy + .seconds(6)
        // Each batch waits a busy timeout for the lock, fails, pauses briefly and tries again.
        #expect(watch.locked(limit: limit, gap: gap, waited: busy, now: start + .seconds(5)) == nil)
        #expect(watch.locked(limit: limit, gap: gap, waited: busy, now: start + .milliseconds(10_050)) == nil)
        let lasted = watch.locked(limit: limit, gap: gap, waited: busy, now: start + .milliseconds(15_150))
        #expect(lasted == .milliseconds(15_150), "\(String(describing: lasted))")
    }

    @Test("a failure long after the last one starts over, from its own wait")
    func failuresFarApartStartOver() {
        let watch = DatabaseLockWatch()
        let start = ContinuousClock.now
        let busy = Duration.seconds(5), limit = busy * 3, gap = busy + .seconds(6)
        #expect(watch.locked(limit: limit, gap: gap, waited: busy, now: start + .seconds(5)) == nil)
        #expect(watch.locked(limit: limit, gap: gap, waited: busy, now: start + .seconds(60)) == nil)
        #expect(watch.locked(limit: limit, gap: gap, waited: busy, now: start + .seconds(65)) == nil)
        #expect(watch.locked(limit: limit, gap: gap, waited: busy, now: start + .seconds(70)) == .seconds(15))
    }
}
