import Synchronization

/// A test seam, honoured by debug builds only (which tests use): a pause at one point of the endpoint's
/// shutdown, zero unless a test sets it. Such a moment lasts a round trip or a task switch in production; a
/// test stretches it to show what happens when something else comes in between.
final class TestDelay: Sendable {
    private let delay = Mutex<Duration>(.zero)

    func set(_ value: Duration) { delay.withLock { $0 = value } }

    func wait() async {
        #if DEBUG
        let delay = delay.withLock { $0 }
        if delay > .zero { try? await Task.sleep(for: delay) }
        #endif
    }
}
