import SagaStore
import Testing
@testable import SagaEndpoint

/// `DispatchMarks`' flush scheduling on explicit instants (no sleeping): at most one flush scheduled at a
/// time, and never none while marks are pending.
extension DispatchMarksTests {
    private static let delay = Duration.milliseconds(50)

    private func rows(_ seqs: Int64...) -> [OutboxKey] { seqs.map { OutboxKey(seq: $0) } }

    private func written(_ flush: DispatchMarks.Flush) -> DispatchMarks.Pending? {
        if case .write(let marks) = flush { return marks }
        return nil
    }

    @Test("a flush that finds nothing pending (a batch took it) clears the flag: the next add schedules again")
    func emptyFlushClearsTheFlag() {
        let marks = DispatchMarks()
        let t0 = ContinuousClock.now
        #expect(marks.add(rows(1), releasing: ["a"], now: t0))
        #expect(marks.take().rows == rows(1))
        #expect(written(marks.flushStarts(after: Self.delay, now: t0 + Self.delay))?.isEmpty == true)
        #expect(marks.add(rows(2), releasing: ["b"], now: t0 + .milliseconds(60)), "a new flush is scheduled")
    }

    @Test("marks added after a batch took the older ones: the scheduled flush waits for them, then writes them")
    func youngMarksAreWaitedFor() {
        let marks = DispatchMarks()
        let t0 = ContinuousClock.now
        #expect(marks.add(rows(1), releasing: ["a"], now: t0))
        _ = marks.take()
        #expect(!marks.add(rows(2), releasing: ["b"], now: t0 + .milliseconds(30)), "the flush scheduled serves")
        guard case .wait(let remaining) = marks.flushStarts(after: Self.delay, now: t0 + Self.delay) else {
            Issue.record("did not wait")
            return
        }
        #expect(remaining == .milliseconds(30))
        #expect(!marks.add(rows(3), releasing: ["c"], now: t0 + .milliseconds(60)))
        let flushed = written(marks.flushStarts(after: Self.delay, now: t0 + .milliseconds(80)))
        #expect(flushed?.rows == rows(2, 3))
        #expect(flushed?.messageIds == ["b", "c"])
        #expect(marks.count == 0)
        #expect(marks.add(rows(4), releasing: ["d"], now: t0 + .milliseconds(90)))
    }

    @Test("marks given back keep their age and their place, and schedule a flush only when none is")
    func givenBackMarks() {
        let marks = DispatchMarks()
        let t0 = ContinuousClock.now
        #expect(marks.add(rows(1), releasing: ["a"], now: t0))
        let taken = marks.take()
        #expect(!marks.add(rows(2), releasing: ["b"], now: t0 + .milliseconds(40)))
        #expect(!marks.putBack(taken), "the flush scheduled at the first add serves")
        // The given-back marks are as old as the delay: written, the younger ones with them.
        let flushed = written(marks.flushStarts(after: Self.delay, now: t0 + Self.delay))
        #expect(flushed?.rows == rows(1, 2))
        #expect(flushed?.since == t0)

        #expect(marks.add(rows(3), releasing: ["c"], now: t0 + .milliseconds(100)))
        let again = marks.take()
        #expect(written(marks.flushStarts(after: Self.delay, now: t0 + .milliseconds(150)))?.isEmpty == true)
        #expect(marks.putBack(again), "no flush is scheduled any more: the caller schedules one")
        #expect(!marks.putBack(DispatchMarks.Pending()))
    }

    /// Random interleavings of adds, batches (taking, committing or giving back) and flushes coming due,
    /// against a model of the scheduled tasks: never two flushes scheduled, never marks with none.
    @Test("random interleavings: one flush scheduled at most, and one whenever marks are pending")
    func randomInterleavings() {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(bound))
        }
        for _ in 0..<200 {
            let marks = DispatchMarks()
            var now = ContinuousClock.now
            var scheduled: [ContinuousClock.Instant] = []   // when each scheduled flush comes due
            var seq: Int64 = 0
            var outstanding = 0    // rows added and neither written nor committed
            for _ in 0..<200 {
                now += .milliseconds(next(30))
                switch next(4) {
                case 0:
                    seq += 1
                    outstanding += 1
                    if marks.add([OutboxKey(seq: seq)], releasing: ["m\(seq)"], now: now) {
                        scheduled.append(now + Self.delay)
                    }
                case 1:
                    let taken = marks.take()
                    if next(3) == 0 {
                        if marks.putBack(taken) { scheduled.append(now + Self.delay) }
                    } else {
                        outstanding -= taken.rows.count
                    }
                default:
                    guard let due = scheduled.first, due <= now else { continue }
                    scheduled.removeFirst()
                    switch marks.flushStarts(after: Self.delay, now: now) {
                    case .wait(let remaining):
                        #expect(remaining > .zero && remaining <= Self.delay)
                        scheduled.append(now + remaining)
                    case .write(let written):
                        outstanding -= written.rows.count
                    }
                }
                #expect(scheduled.count <= 1, "two flushes scheduled")
                #expect(marks.count == outstanding)
                if marks.count > 0 { #expect(scheduled.count == 1, "marks pending with no flush scheduled") }
            }
        }
    }
}
