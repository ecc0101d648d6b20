import Synchronization

/// A test seam, honoured by debug builds only (which tests use): how long a graceful shutdown waits, once it
/// has set `stopping`, before it cancels the consumers. In production that moment lasts one round trip per
/// input queue; a test stretches it to show that nothing handed back meanwhile comes back to this endpoint.
final class ConsumerCancelDelay: Sendable {
    private let delay = Mutex<Duration>(.zero)

    func set(_ value: Duration) { delay.withLock { $0 = value } }

    func wait() async {
        #if DEBUG
        let delay = delay.withLock { $0 }
        if delay > .zero { try? await Task.sleep(for: delay) }
        #endif
    }
}
