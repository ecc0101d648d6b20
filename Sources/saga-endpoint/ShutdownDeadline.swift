import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The time limit of `run`'s and `bank`'s graceful shutdown (`--shutdown-timeout`, 30 s by default): once it
/// runs out, what still runs is cancelled (a stateless handler, a batch waiting for its confirms), and its
/// deliveries go back to their queues.
///
/// ServiceGroup's own `maximumGracefulShutdownDuration` does the cancelling silently (a debug line), so the
/// process exited as after a clean stop and nothing told an operator that the limit, or the orchestrator's
/// grace period behind it, was too short. This service keeps the limit itself: added to the group last, it
/// is told of the graceful shutdown first, starts the clock, and when the limit runs out logs a warning
/// naming it and cancels the group.
final class ShutdownDeadline: Service, Sendable {
    let seconds: Double
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var group: Task<Void, any Error>?
        var timer: Task<Void, Never>?
        var finished = false
        var ranOut = false
    }

    init(seconds: Double, logger: Logger) {
        self.seconds = seconds
        self.logger = logger
    }

    /// Whether the limit ran out: the shutdown was cut short by a cancellation.
    var ranOut: Bool { state.withLock { $0.ranOut } }

    /// Waits for the group's graceful shutdown, starts the clock, and returns at once (the group goes on
    /// with its other services meanwhile). Returns without starting it when the group is cancelled first.
    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            return
        }
        // Capped at a year (by `secondsDuration`): a bigger number of seconds means "no limit".
        let limit = secondsDuration(seconds)
        let timer = Task { [self] in
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            runOut()
        }
        state.withLock { $0.timer = timer }
    }

    /// Runs `group`, which must hold this service, until it returns; returns whether the limit ran out. The
    /// group runs in a task of its own so that the limit can cancel it.
    func run(_ group: ServiceGroup) async throws -> Bool {
        // `finished` is set as soon as the group returns, in its own task: set later (after `running.value`
        // had resumed this task), a limit running out in between logged "took longer" and "cut short" for
        // a shutdown that had completed.
        let running = Task { [self] in
            defer { self.state.withLock { $0.finished = true } }
            try await group.run()
        }
        state.withLock { $0.group = running }
        defer {
            state.withLock {
                $0.finished = true
                $0.timer?.cancel()
            }
        }
        do {
            try await withTaskCancellationHandler { try await running.value } onCancel: { running.cancel() }
        } catch is CancellationError where ranOut {
            // The cancellation this limit asked for: what it cut short goes back to its queues.
        }
        return ranOut
    }

    private func runOut() {
        let group = state.withLock { state -> Task<Void, any Error>? in
            guard !state.finished else { return nil }
            state.ranOut = true
            return state.group
        }
        guard let group else { return }
        logger.warning("graceful shutdown took longer than \(Self.describe(seconds)) s; cancelling what is still running: its messages go back to their queues",
                       metadata: ["shutdown_timeout_seconds": "\(Self.describe(seconds))"])
        group.cancel()
    }

    /// `30`, `2.5`: the number as the operator wrote it.
    static func describe(_ seconds: Double) -> String {
        seconds.rounded() == seconds && seconds < 1e15 ? String(Int64(seconds)) : String(seconds)
    }
}
