@testable import DedicatedThread
import Foundation
import Synchronization
import Testing

/// An actor whose code runs on a dedicated thread.
private actor Pump {
    let executor = DedicatedThreadExecutor(name: "test-pump")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    func ping() -> Bool { executor.isCurrent }
}

/// An actor that reports the OS name of the thread its code runs on.
private actor NamedPump {
    let executor: DedicatedThreadExecutor
    init(name: String) { executor = DedicatedThreadExecutor(name: name) }
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    func osThreadName() -> String {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return name.trimmingCharacters(in: .newlines)
    }
}

/// An actor on its own thread whose jobs can be held up and ordered by the test.
private actor Gate {
    nonisolated let executor = DedicatedThreadExecutor(name: "test-gate")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private nonisolated let semaphore = DispatchSemaphore(value: 0)
    private nonisolated let state = Mutex((blocked: false, marked: false))

    func block() {
        state.withLock { $0.blocked = true }
        semaphore.wait()
    }

    nonisolated func release() { semaphore.signal() }
    nonisolated var isBlocked: Bool { state.withLock { $0.blocked } }
    nonisolated var marked: Bool { state.withLock { $0.marked } }

    func waitForever() { _ = executor.waitForReadable(-1, timeoutMilliseconds: -1) }
    func mark() { state.withLock { $0.marked = true } }
}

private func until(_ condition: () -> Bool) async throws {
    while !condition() { try await Task.sleep(for: .milliseconds(5)) }
}

@Suite("Dedicated-thread executor")
struct DedicatedThreadExecutorTests {
    @Test("actor code runs on the dedicated thread")
    func runsOnItsThread() async {
        let pump = Pump()
        #expect(await pump.ping())
    }

    // Regression: `Thread.name` did not reach the OS, so every dedicated thread showed the name of the pool
    // thread that created it ("…default-qos") in `top -H` and `perf`.
    @Test("perform runs blocking set-up on the executor's thread and hands back its result or error")
    func performRunsOnItsThread() async throws {
        let executor = DedicatedThreadExecutor(name: "test-perform")
        defer { executor.shutdown() }
        #expect(try await executor.perform { executor.isCurrent })
        struct Refused: Error {}
        await #expect(throws: Refused.self) { try await executor.perform { throw Refused() } }
    }

    @Test("the OS knows the thread by its name, shortened at both ends to Linux's 15 bytes",
          .enabled(if: FileManager.default.fileExists(atPath: "/proc/thread-self/comm"), "thread names are read from Linux's /proc"))
    func osThreadName() async {
        #expect(await NamedPump(name: "sqlite-read").osThreadName() == "sqlite-read")
        #expect(await NamedPump(name: "amqp saga-endpoint-publish").osThreadName() == "amqp sa~publish")
        #expect(DedicatedThreadExecutor.osThreadName("ab€cdefghijklmnopq€") == "ab€cd~nopq€")
    }

    // Regression: a job blocked in `waitForReadable` did not notice jobs already taken into the same
    // batch behind it, so they waited for its full timeout (about 8 ms per AMQP delivery on average, and
    // whole seconds at worst). Here the timeout is infinite: with the bug the test hangs (time limit).
    @Test("a job waiting for I/O returns when jobs of its own batch wait behind it", .timeLimit(.minutes(1)))
    func waitReturnsForJobsInTheSameBatch() async throws {
        let gate = Gate()
        let executor = gate.executor
        let blocker = Task { await gate.block() }
        try await until { gate.isBlocked }
        // While the thread is blocked, queue a waiting job and a job behind it: they form one batch.
        let waiter = Task { await gate.waitForever() }
        try await until { executor.queuedJobCount == 1 }
        let behind = Task { await gate.mark() }
        try await until { executor.queuedJobCount == 2 }
        gate.release()
        // With the bug the thread stays in the waiter's poll and `behind` never runs: this wait is then
        // cancelled by the time limit and the test fails instead of hanging.
        try await until { gate.marked }
        await blocker.value
        await behind.value
        _ = waiter
        #expect(gate.marked)
    }

    @Test("waitForReadable returns when the descriptor becomes readable")
    func wakesOnDescriptor() async throws {
        let executor = DedicatedThreadExecutor(name: "test-fd")
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let readEnd = fds[0], writeEnd = fds[1]
        // Waiter and writer are threads of their own, and the test awaits rather than blocks. Before, the
        // write waited for a `Task.sleep` to resume on the cooperative pool while this test blocked a pool
        // thread on a semaphore; in one full `make test` run the waiter then saw no byte in its 10 s, most
        // likely because the write was starved.
        let readable = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            Thread {
                // A wake-up of the executor's own pipe also ends the wait (callers loop, as here); on a
                // loaded machine one can come before the byte does.
                let deadline = ContinuousClock.now + .seconds(10)
                var readable = false
                while !readable && ContinuousClock.now < deadline {
                    readable = executor.waitForReadable(readEnd, timeoutMilliseconds: 5000)
                }
                continuation.resume(returning: readable)
            }.start()
            Thread {
                Thread.sleep(forTimeInterval: 0.05)
                var byte: UInt8 = 1
                _ = write(writeEnd, &byte, 1)
            }.start()
        }
        #expect(readable)
        executor.shutdown()
    }
}
