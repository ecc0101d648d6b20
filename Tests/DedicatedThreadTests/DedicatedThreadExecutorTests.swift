import DedicatedThread
import Foundation
import Synchronization
import Testing

/// An actor on a dedicated thread whose pump blocks in `waitForReadable` between requests, the way an
/// AMQP connection does.
private actor Pump {
    let executor = DedicatedThreadExecutor(name: "test-pump")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private var running = true
    private(set) var longWaits = 0

    func start() { Task { await self.loop() } }

    private func loop() async {
        while running {
            let started = ContinuousClock.now
            _ = executor.waitForReadable(-1, timeoutMilliseconds: 2000)
            if ContinuousClock.now - started > .milliseconds(1000) { longWaits += 1 }
            await Task.yield()
        }
    }

    func ping() -> Bool { executor.isCurrent }
    func stop() { running = false }
}

@Suite("Dedicated-thread executor")
struct DedicatedThreadExecutorTests {
    @Test("actor code runs on the dedicated thread")
    func runsOnItsThread() async {
        let pump = Pump()
        #expect(await pump.ping())
        await pump.stop()
    }

    // Regression: jobs taken into the current batch behind a job blocked in `waitForReadable` did not
    // wake it, so each such request waited for the full poll timeout (about 8 ms per message on average,
    // and whole seconds at worst, in the AMQP pump).
    @Test("a request never waits behind a job blocked in waitForReadable")
    func requestsWakeTheWaitingJob() async {
        let pump = Pump()
        await pump.start()
        let started = ContinuousClock.now
        for _ in 0..<2000 { _ = await pump.ping() }
        let elapsed = ContinuousClock.now - started
        #expect(await pump.longWaits == 0, "requests waited behind a blocked job (took \(elapsed))")
        await pump.stop()
    }

    @Test("waitForReadable returns when the descriptor becomes readable")
    func wakesOnDescriptor() async throws {
        let executor = DedicatedThreadExecutor(name: "test-fd")
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let readEnd = fds[0], writeEnd = fds[1]
        let result = Mutex<Bool?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            result.withLock { $0 = executor.waitForReadable(readEnd, timeoutMilliseconds: 5000) }
            done.signal()
        }.start()
        try await Task.sleep(for: .milliseconds(50))
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
        done.wait()
        #expect(result.withLock { $0 } == true)
        executor.shutdown()
    }
}
