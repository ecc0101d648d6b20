import Dispatch
import Foundation
import Logging
import Synchronization

/// Ends a write of publishes that the broker does not take, when the publish is cancelled.
///
/// A broker in a resource alarm stops reading from the connections that publish. A batch whose frames add
/// up to more than the socket's buffers then keeps the connection's thread inside rabbitmq-c's write,
/// which waits without a deadline: the actor cannot run the cancellation, the close, or anything else
/// until the alarm clears. Each publish call takes a ticket; when it is cancelled while its own batch is
/// being written, or before that write starts, and that write is still in progress a moment later, the
/// socket is shut down from the cancelling side (`shutdown(2)` is safe on a socket another thread writes
/// to; the descriptor stays open), the write fails, and the connection counts as lost: the unconfirmed
/// publishes fail, and it is re-established (or stays closed when the client closes it). Another batch's
/// write (a slow link) is left alone.
///
/// `Sendable`: the socket, the write in progress and the cancelled tickets are kept under a mutex. The
/// connection's thread holds it only to start and end a write; `end` waits for an abort in progress, so the
/// descriptor is never shut down after the write ended (the connection may close it, and the number be
/// reused, only then).
final class StuckWriteGuard: Sendable {
    private struct Write {
        var socket: Int32
        var ticket: UInt64
    }

    private struct State {
        var current: Write?
        var issued: UInt64 = 0
        /// Cancelled before their write began: armed when it begins. Bounded by the publishes waiting for
        /// the actor; a ticket leaves when its write ends or it is let go of.
        var cancelledEarly: Set<UInt64> = []
    }

    private let state = Mutex(State())
    private let logger: Logger
    /// How long a cancelled write may still go on before its socket is shut down.
    let grace: Duration

    init(logger: Logger, grace: Duration = .seconds(1)) {
        self.logger = logger
        self.grace = grace
    }

    /// A ticket for one publish call (`begin`, `cancelled`, `release`).
    func ticket() -> UInt64 {
        state.withLock { state in
            state.issued &+= 1
            return state.issued
        }
    }

    /// On the connection's thread, before the frames of the batch of `ticket` are written to `socket`.
    func begin(socket: Int32, ticket: UInt64) {
        guard socket >= 0 else { return }
        let cancelledAlready = state.withLock { state in
            state.current = Write(socket: socket, ticket: ticket)
            return state.cancelledEarly.remove(ticket) != nil
        }
        if cancelledAlready { arm(ticket) }
    }

    /// On the connection's thread, once the write returned.
    func end() {
        state.withLock { $0.current = nil }
    }

    /// The publish call of `ticket` returned: forget it.
    func release(_ ticket: UInt64) {
        _ = state.withLock { $0.cancelledEarly.remove(ticket) }
    }

    /// From any thread (a publish's cancellation): if `ticket`'s write is in progress, or once it begins,
    /// shuts its socket down when it is still in progress after `grace`.
    func cancelled(_ ticket: UInt64) {
        let writing = state.withLock { state -> Bool in
            if state.current?.ticket == ticket { return true }
            state.cancelledEarly.insert(ticket)
            return false
        }
        if writing { arm(ticket) }
    }

    private func arm(_ ticket: UInt64) {
        let nanoseconds = grace.components.seconds * 1_000_000_000 + grace.components.attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [self] in
            let stuck = state.withLock { state -> Bool in
                guard let current = state.current, current.ticket == ticket else { return false }
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
