import Synchronization

/// The batches' last stages (publish, await the confirms, settle) still running. They run in tasks of
/// their own, so the endpoint's cancellation (a shutdown's grace period ending) does not reach them by
/// itself: a batch whose confirms the broker held back (a resource alarm) kept the endpoint from ever
/// stopping. Cancelled, a batch stops waiting and hands its deliveries back.
final class FinishingTasks: Sendable {
    /// The pipeline keeps at most three batches in flight and each awaits the one before it, so the
    /// last few are all that can still run.
    private static let kept = 4
    /// How long a cancelled endpoint lets its batches in flight go on before they stop waiting.
    static let graceOnCancel: Duration = .seconds(2)
    private let state = Mutex<(tasks: [Task<Void, Never>], cancelled: Bool)>(([], false))

    /// Keeps `task` to cancel it with the others; cancels it at once when that has happened already (the
    /// batches still queued are run after the cancellation, and must not wait either).
    func add(_ task: Task<Void, Never>) {
        let cancelled = state.withLock {
            $0.tasks.append(task)
            if $0.tasks.count > Self.kept { $0.tasks.removeFirst($0.tasks.count - Self.kept) }
            return $0.cancelled
        }
        if cancelled { task.cancel() }
    }

    func cancelAll() {
        let tasks = state.withLock {
            $0.cancelled = true
            return $0.tasks
        }
        for task in tasks { task.cancel() }
    }
}
