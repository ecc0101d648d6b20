@testable import DedicatedThread
import Foundation
import Synchronization
import Testing

#if os(Linux)
/// Counts the jobs handed to the global executor from one dedicated thread, through the runtime's
/// `swift_task_enqueueGlobal_hook` (as swift-nio's benchmarks do). Every job still goes on to the pool.
private enum GlobalEnqueues {
    typealias Hook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void

    nonisolated(unsafe) private static let hook: UnsafeMutablePointer<Hook?> =
        dlsym(dlopen(nil, RTLD_LAZY), "swift_task_enqueueGlobal_hook").assumingMemoryBound(to: Hook?.self)
    private static let watched = Mutex<DedicatedThreadExecutor?>(nil)
    private static let count = Atomic<Int>(0)
    private static let lock = Mutex<Void>(())

    /// How many jobs `body` (and whatever runs meanwhile) sent from `executor`'s thread to the pool.
    static func counting(from executor: DedicatedThreadExecutor, _ body: () async -> Void) async -> Int {
        watched.withLock { $0 = executor }
        count.store(0, ordering: .sequentiallyConsistent)
        let previous = hook.pointee
        hook.pointee = { job, original in
            if GlobalEnqueues.watched.withLock({ $0?.isCurrent == true }) {
                GlobalEnqueues.count.add(1, ordering: .relaxed)
            }
            original(job)
        }
        await body()
        hook.pointee = previous
        watched.withLock { $0 = nil }
        return count.load(ordering: .sequentiallyConsistent)
    }
}

private actor OnThread {
    nonisolated let executor = DedicatedThreadExecutor(name: "test-yield-pool")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    func yieldToQueuedJobs(_ times: Int) async {
        for _ in 0..<times { await executor.yieldToQueuedJobs() }
    }

    func taskYield(_ times: Int) async {
        for _ in 0..<times { await Task.yield() }
    }
}

// The point of `yieldToQueuedJobs`: a connection's pump steps aside without a trip through the global pool.
// `Task.yield()` is the control that shows the hook sees such trips.
@Suite("Dedicated-thread executor: a yield stays off the global pool", .serialized, .timeLimit(.minutes(1)))
struct YieldStaysOnThreadTests {
    @Test("Task.yield() on the thread goes through the global pool (the hook sees it)")
    func taskYieldGoesThroughThePool() async {
        let actor = OnThread()
        let trips = await GlobalEnqueues.counting(from: actor.executor) { await actor.taskYield(100) }
        #expect(trips >= 100)
        actor.executor.shutdown()
    }

    @Test("yieldToQueuedJobs() does not: each yield is one job on the dedicated thread's own queue")
    func yieldToQueuedJobsStaysOnThread() async {
        let actor = OnThread()
        let enqueuedBefore = actor.executor.enqueuedJobCount
        let trips = await GlobalEnqueues.counting(from: actor.executor) { await actor.yieldToQueuedJobs(100) }
        #expect(trips < 10, "\(trips) of 100 yields went through the global pool")
        // One for the call into the actor, one per yield: the hop back to the actor after a yield is free.
        let enqueued = actor.executor.enqueuedJobCount - enqueuedBefore
        #expect(enqueued <= 101, "\(enqueued) jobs enqueued for 100 yields")
        #expect(actor.executor.requeuedYields == 100)
        actor.executor.shutdown()
    }
}
#endif

/// An actor whose job yields while its executor is told to stop.
private actor StoppingYielder {
    nonisolated let executor = DedicatedThreadExecutor(name: "test-yield-stop")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    nonisolated let started = Atomic<Bool>(false)
    nonisolated let stopRequested = Atomic<Bool>(false)
    nonisolated let finished = Atomic<Bool>(false)

    func yieldWhileStopping() async {
        started.store(true, ordering: .sequentiallyConsistent)
        while !stopRequested.load(ordering: .sequentiallyConsistent) { usleep(100) }
        await executor.yieldToQueuedJobs()
        finished.store(true, ordering: .sequentiallyConsistent)
    }
}

@Suite("Dedicated-thread executor: a yield across shutdown()", .timeLimit(.minutes(1)))
struct YieldAcrossShutdownTests {
    // `shutdown()` promises that the thread exits only once the queue is empty. A task in the middle of a
    // yield is work already on the executor: it must go on, not be left suspended forever.
    @Test("a task that yields in the last job before the thread stops still finishes", arguments: 0..<20)
    func yieldBeforeStop(_ attempt: Int) async throws {
        let yielder = StoppingYielder()
        let task = Task { await yielder.yieldWhileStopping() }
        while !yielder.started.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(1)) }
        yielder.executor.shutdown()
        yielder.stopRequested.store(true, ordering: .sequentiallyConsistent)
        let deadline = ContinuousClock.now + .seconds(10)  // generous: before the fix it never went on
        while !yielder.finished.load(ordering: .sequentiallyConsistent), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        let finished = yielder.finished.load(ordering: .sequentiallyConsistent)
        #expect(finished, "the yielded task never went on")
        if finished { await task.value }
    }
}
