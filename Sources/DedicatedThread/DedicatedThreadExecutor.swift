#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A serial executor that owns one OS thread and runs every job on it.
///
/// Blocking C libraries (rabbitmq-c, SQLite) must never block Swift's cooperative thread pool, and
/// rabbitmq-c connections must stay on one thread. An actor that returns this executor as its
/// `unownedExecutor` runs all its isolated code on the dedicated thread, so its blocking calls block only
/// that thread, and callers simply `await` it.
///
/// A job that wants to wait for I/O (a socket) while staying responsive to new jobs calls
/// ``waitForReadable(_:timeoutMilliseconds:)``: it returns as soon as the descriptor is readable, the
/// timeout passes, or another job is enqueued. Afterwards the job should `await yieldToQueuedJobs()` so
/// queued jobs get their turn.
public final class DedicatedThreadExecutor: SerialExecutor, @unchecked Sendable {
    // `@unchecked Sendable`: the mutable state shared between threads (the job queue and the stop flag)
    // lives in `queue`, a `Mutex`; `batchBacklog` is read and written only on the dedicated thread;
    // `wakeFD`, `name` and `requeue` are immutable after init.
    private struct Queue: ~Copyable {
        var jobs: [UnownedJob] = []
        var stopped = false
        /// Jobs enqueued so far: for tests.
        var enqueued = 0
    }

    private let queue = Mutex(Queue())
    /// A non-blocking pipe whose read end is readable whenever jobs are waiting.
    private let wakeFD: Int32
    private let wakeWriteFD: Int32
    public let name: String
    private let threadID = Mutex<pthread_t?>(nil)
    /// Jobs taken from the queue in the current batch that have not run yet. A job that waits for I/O
    /// must not block while these wait behind it.
    private var batchBacklog = 0
    /// Where `yieldToQueuedJobs` sends a task to queue it here again. Set once, in init (it needs `self`).
    private var requeue: RequeueHop!

    /// `stackSize` is the thread's stack in bytes: address space reserved, not memory used until touched.
    public init(name: String, stackSize: Int = 1 << 20) {
        self.name = name
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0, "pipe failed: \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.wakeFD = fds[0]
        self.wakeWriteFD = fds[1]
        self.requeue = RequeueHop(RequeueExecutor(self))
        let ready = DispatchSemaphore(value: 0)
        let osName = Self.osThreadName(name)
        let thread = Thread { [self] in
            self.threadID.withLock { $0 = pthread_self() }
            // Foundation's `Thread.name` does not reach the OS here: without this the thread keeps the
            // name of the pool thread that created it, and `top -H` or `perf` cannot tell SQLite from AMQP.
            Self.setOSThreadName(osName)
            ready.signal()
            self.run()
        }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
        ready.wait()
    }

    /// The name as the OS keeps it: Linux allows 15 bytes, so a longer name keeps its first 7 and last 7
    /// bytes around a "~" ("amqp saga-endpoint-publish" → "amqp sa~publish"): the ends tell threads apart.
    static func osThreadName(_ name: String) -> String {
        let limit = 15
        guard name.utf8.count > limit else { return name }
        let side = (limit - 1) / 2
        var head = "", tail = ""
        for character in name {
            guard head.utf8.count + character.utf8.count <= side else { break }
            head.append(character)
        }
        for character in name.reversed() {
            guard tail.utf8.count + character.utf8.count <= side else { break }
            tail.insert(character, at: tail.startIndex)
        }
        return head + "~" + tail
    }

    /// Names the calling thread for the OS (shortened as `osThreadName` does), for threads of other kinds.
    public static func nameCurrentThread(_ name: String) {
        setOSThreadName(osThreadName(name))
    }

    /// Names the calling thread for the OS. Through `/proc/thread-self/comm` (proc(5)) because Glibc's
    /// `pthread_setname_np` is not visible to Swift without `_GNU_SOURCE`.
    private static func setOSThreadName(_ name: String) {
        #if os(Linux)
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = name.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
        #endif
    }

    deinit {
        close(wakeFD)
        close(wakeWriteFD)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let wasEmpty = queue.withLock { state -> Bool in
            let wasEmpty = state.jobs.isEmpty
            state.jobs.append(job)
            state.enqueued += 1
            return wasEmpty
        }
        if wasEmpty { wake() }
    }

    /// `enqueue` from a job running on the thread (`RequeueExecutor`): no wake-up is needed, `run` takes the
    /// queue again after the current batch, and `waitForReadable` looks at the queue before it polls.
    fileprivate func enqueueFromOwnThread(_ job: consuming ExecutorJob) {
        assert(isCurrent, "a task requeued from outside the dedicated thread '\(name)'")
        let job = UnownedJob(job)
        queue.withLock { state in
            state.jobs.append(job)
            state.enqueued += 1
        }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Jobs waiting in the queue (not those of the batch being run): for tests and diagnostics.
    public var queuedJobCount: Int { queue.withLock { $0.jobs.count } }

    /// Jobs enqueued since the start, whatever their source: for tests.
    var enqueuedJobCount: Int { queue.withLock { $0.enqueued } }

    /// True on the executor's own thread.
    public var isCurrent: Bool {
        guard let id = threadID.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    public func checkIsolated() {
        precondition(isCurrent, "expected to run on the dedicated thread '\(name)'")
    }

    /// Lets the thread finish the queued jobs and exit. Jobs enqueued afterwards still run: the thread
    /// only exits once the queue is empty, so call this when no more work can arrive (from `deinit`).
    public func shutdown() {
        queue.withLock { $0.stopped = true }
        wake()
    }

    /// Blocks the current (dedicated) thread until `fd` is readable, `timeoutMilliseconds` pass, or a job
    /// is enqueued. Returns true when `fd` is readable. `fd < 0` waits for jobs or the timeout only.
    public func waitForReadable(_ fd: Int32, timeoutMilliseconds: Int32) -> Bool {
        if batchBacklog > 0 || queue.withLock({ !$0.jobs.isEmpty }) { return false }
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        if fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        let count = fds.count
        let rc = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t(count), timeoutMilliseconds) }
        guard rc > 0, fd >= 0 else { return false }
        return fds[1].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
    }

    /// Lets the jobs queued on this executor run, then goes on on it. For code isolated to an actor on this
    /// executor (on its thread). `Task.yield()` would hand the task to the global pool, whose thread would
    /// then hop it back here: two thread wake-ups per yield, which for a connection's pump yielding to each
    /// publish and acknowledgement were a good share of the endpoint's CPU at a few thousand messages a
    /// second.
    ///
    /// Not through a continuation: the runtime resumes a continuation on the generic executor (the global
    /// pool, `swift_continuation_init` sets no other) and only the caller's hop after the `await` brings the
    /// task back, so a continuation parked here and resumed by `run` made the same round trip as
    /// `Task.yield()`. Instead the task hops to an actor whose executor is another identity of this one
    /// (`RequeueExecutor`): the runtime enqueues it there, which appends it to this queue behind every job
    /// already waiting, and `run` runs it as this executor's job, so the hop back to the caller's actor
    /// finds the task on its executor already. No continuation is parked, so none can be left unresumed
    /// when the thread stops: the task is a job in the queue, and `run` exits only once that is empty.
    public func yieldToQueuedJobs(isolation: isolated (any Actor)? = #isolation) async {
        precondition(isCurrent, "yieldToQueuedJobs() outside the dedicated thread '\(name)'")
        await requeue.pass()
    }

    /// Tasks the runtime enqueued through `yieldToQueuedJobs` so far: for tests.
    var requeuedYields: Int { requeue.executor.requeued.load(ordering: .relaxed) }

    private func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeWriteFD, $0.baseAddress, $0.count) }
    }

    private func drainWake() {
        var buffer: UInt64 = 0
        while withUnsafeMutableBytes(of: &buffer, { read(wakeFD, $0.baseAddress, $0.count) }) > 0 {}
    }

    private func run() {
        let executor = asUnownedSerialExecutor()
        while true {
            // Drain the wake signal before taking the jobs: an enqueue after the take sees an empty queue
            // and signals again, so no wake-up is lost.
            drainWake()
            let (jobs, stopped) = queue.withLock { state -> ([UnownedJob], Bool) in
                let jobs = state.jobs
                state.jobs.removeAll(keepingCapacity: true)
                return (jobs, state.stopped)
            }
            if jobs.isEmpty {
                if stopped { return }
                var fds = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
                _ = poll(&fds, 1, -1)
                continue
            }
            for (index, job) in jobs.enumerated() {
                batchBacklog = jobs.count - index - 1
                job.runSynchronously(on: executor)
            }
            batchBacklog = 0
        }
    }
}

/// Another identity of a `DedicatedThreadExecutor`, for `yieldToQueuedJobs`: its jobs go to that executor's
/// queue and run on its thread as that executor's jobs (`run` runs every job on `self`). An actor on it is
/// not the same isolation as an actor on the owner to the runtime, so hopping to it enqueues the task (on
/// the owner's queue) instead of going on in place; and since the job then runs as the owner's, hopping
/// back costs nothing. Only `RequeueHop` runs here.
final class RequeueExecutor: SerialExecutor, @unchecked Sendable {
    // `@unchecked Sendable`: `owner` is immutable; `requeued` is atomic.
    // Unowned: the owner keeps this alive (through `RequeueHop`), not the other way round. Tasks come here
    // only from the owner's thread, from code isolated to an actor on the owner, which keeps it alive.
    unowned let owner: DedicatedThreadExecutor
    /// Tasks enqueued here: for tests.
    let requeued = Atomic<Int>(0)

    init(_ owner: DedicatedThreadExecutor) {
        self.owner = owner
    }

    func enqueue(_ job: consuming ExecutorJob) {
        requeued.add(1, ordering: .relaxed)
        owner.enqueueFromOwnThread(job)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }
}

/// The actor a yielding task hops to (see `RequeueExecutor`).
actor RequeueHop {
    nonisolated let executor: RequeueExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    init(_ executor: RequeueExecutor) {
        self.executor = executor
    }

    private var passes = 0

    /// Isolated, so that calling it hops here. It touches the actor's state so that the optimizer keeps the
    /// hop: it drops a hop after which nothing needs the executor (an empty `pass()` built with -O did not
    /// hop at all, and the yield let no queued job run).
    func pass() {
        passes &+= 1
    }
}
