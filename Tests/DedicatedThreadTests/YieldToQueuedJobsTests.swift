@testable import DedicatedThread
import Foundation
import Synchronization
import Testing

/// An actor on its own thread that records what ran, in order.
private actor Yielder {
    nonisolated let executor = DedicatedThreadExecutor(name: "test-yield")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    nonisolated let log = Mutex<[String]>([])

    /// Works until another job is queued behind it, yields, and records whether it went on on its thread.
    func workThenYield() async {
        log.withLock { $0.append("start") }
        let deadline = ContinuousClock.now + .seconds(30)
        while executor.queuedJobCount == 0, ContinuousClock.now < deadline { usleep(1_000) }
        await executor.yieldToQueuedJobs()
        log.withLock { $0.append("after, on its thread: \(executor.isCurrent)") }
    }

    func record(_ entry: String) { log.withLock { $0.append(entry) } }

    func yieldRepeatedly(_ times: Int) async -> Bool {
        var onThread = true
        for _ in 0..<times {
            await executor.yieldToQueuedJobs()
            onThread = onThread && executor.isCurrent
        }
        return onThread
    }
}

// A connection's pump yields to queued requests between reads. `Task.yield()` handed the task to the global
// pool, whose thread hopped it back to the dedicated one: two thread wake-ups per yield.
@Suite("Dedicated-thread executor: yielding to queued jobs", .timeLimit(.minutes(1)))
struct YieldToQueuedJobsTests {
    @Test("a job queued while the actor works runs at the yield; then the actor goes on on its thread")
    func queuedJobRunsFirst() async {
        let yielder = Yielder()
        async let worked: Void = yielder.workThenYield()
        while yielder.log.withLock({ $0.isEmpty }) { try? await Task.sleep(for: .milliseconds(1)) }
        await yielder.record("queued job")
        await worked
        #expect(yielder.log.withLock { $0 } == ["start", "queued job", "after, on its thread: true"])
        yielder.executor.shutdown()
    }

    @Test("yields with nothing queued go on at once, on the thread, many times over")
    func yieldsWithNothingQueued() async {
        let yielder = Yielder()
        #expect(await yielder.yieldRepeatedly(10_000))
        yielder.executor.shutdown()
    }
}
