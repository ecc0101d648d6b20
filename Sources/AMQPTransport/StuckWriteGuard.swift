import Dispatch
import Foundation
import Logging
import Synchronization

/// Ends a write of publishes that the broker does not take, when the publish is cancelled.
///
/// A broker in a resource alarm stops reading from the connections that publish. A batch whose frames add
/// up to more than the socket's buffers then keeps the connection's thread inside rabbitmq-c's write,
/// which waits without a deadline: the actor cannot run the cancellation, the close, or anything else
/// until the alarm clears. Cancelling the publish arms this guard; if the same write is still in progress
/// a moment later, the socket is shut down from the cancelling side (`shutdown(2)` is safe on a socket
/// another thread writes to; the descriptor stays open), the write fails, and the connection counts as
/// lost: the unconfirmed publishes fail, and it is re-established (or stays closed when the client closes it).
///
/// `Sendable`: the socket and the write in progress are kept under a mutex. The connection's thread holds
/// it only to start and end a write; `end` waits for an abort in progress, so the descriptor is never
/// shut down after the write ended (the connection may close it, and the number be reused, only then).
final class StuckWriteGuard: Sendable {
    private struct Write {
        var socket: Int32
        var number: UInt64
    }

    private struct State {
        var current: Write?
        var started: UInt64 = 0
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// How long a cancelled write may still go on before its socket is shut down.
    let grace: Duration

    init(logger: Logger, grace: Duration = .seconds(1)) {
        self.logger = logger
        self.grace = grace
    }

    /// On the connection's thread, before the frames of a batch are written to `socket`.
    func begin(socket: Int32) {
        guard socket >= 0 else { return }
        state.withLock { state in
            state.started &+= 1
            state.current = Write(socket: socket, number: state.started)
        }
    }

    /// On the connection's thread, once the write returned.
    func end() {
        state.withLock { $0.current = nil }
    }

    /// From any thread (a publish's cancellation): if a write is in progress, shuts its socket down when
    /// it is still the write in progress after `grace`.
    func cancelled() {
        guard let write = state.withLock({ $0.current }) else { return }
        let nanoseconds = grace.components.seconds * 1_000_000_000 + grace.components.attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [self] in
            let stuck = state.withLock { state -> Bool in
                guard let current = state.current, current.number == write.number else { return false }
                _ = shutdown(current.socket, Int32(SHUT_RDWR))
                return true
            }
            if stuck {
                logger.warning("a cancelled publish was still being written; connection dropped (the broker does not read from it: resource alarm?)",
                               metadata: ["grace": "\(grace)"])
            }
        }
    }
}
