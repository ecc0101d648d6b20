// The guard that shuts a socket down when a cancelled publish stays stuck in its write (see
// ResourceAlarmTests for the real thing). Here on a socket pair, with a short grace.
@testable import AMQPTransport
import Foundation
import Logging
import Testing

@Suite("StuckWriteGuard")
struct StuckWriteGuardTests {
    /// A connected pair of Unix sockets; `isShutDown` asks whether `mine` was shut down for writing.
    private final class SocketPair {
        let mine: Int32
        let peer: Int32

        init() throws {
            var fds: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
                throw AMQPError(.library, message: "socketpair failed")
            }
            (mine, peer) = (fds[0], fds[1])
        }

        /// A shut-down socket fails a write with EPIPE (SIGPIPE is ignored with MSG_NOSIGNAL).
        var isShutDown: Bool {
            let byte: [UInt8] = [0]
            return byte.withUnsafeBytes { send(mine, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) } < 0
        }

        deinit {
            close(mine)
            close(peer)
        }
    }

    private let grace = Duration.milliseconds(50)

    @Test("a cancelled publish whose own write goes on past the grace gets its socket shut down")
    func ownWriteIsShutDown() async throws {
        let pair = try SocketPair()
        let guarding = StuckWriteGuard(logger: Logger(label: "test"), grace: grace)
        let ticket = guarding.ticket()
        guarding.begin(socket: pair.mine, ticket: ticket)
        guarding.cancelled(ticket)
        try await Task.sleep(for: .milliseconds(300))
        #expect(pair.isShutDown)
        guarding.end()
    }

    // Failed before (one guard for any write): cancelling one publish shut down the socket while another
    // batch was being written, e.g. a large batch on a slow link, and dropped a healthy connection.
    @Test("cancelling one publish leaves another batch's write alone")
    func anotherWriteIsLeftAlone() async throws {
        let pair = try SocketPair()
        let guarding = StuckWriteGuard(logger: Logger(label: "test"), grace: grace)
        let writing = guarding.ticket()
        let waiting = guarding.ticket()
        guarding.begin(socket: pair.mine, ticket: writing)
        guarding.cancelled(waiting)
        try await Task.sleep(for: .milliseconds(300))
        #expect(!pair.isShutDown)
        guarding.end()
        guarding.release(waiting)
    }

    @Test("a publish cancelled before its write began is guarded once it begins; one that ended in time is not")
    func cancelledBeforeItsWrite() async throws {
        let pair = try SocketPair()
        let guarding = StuckWriteGuard(logger: Logger(label: "test"), grace: grace)
        let quick = guarding.ticket()
        guarding.cancelled(quick)
        guarding.begin(socket: pair.mine, ticket: quick)
        guarding.end()
        guarding.release(quick)
        try await Task.sleep(for: .milliseconds(300))
        #expect(!pair.isShutDown, "a write that ended within the grace is not cut")

        let stuck = guarding.ticket()
        guarding.cancelled(stuck)
        guarding.begin(socket: pair.mine, ticket: stuck)
        try await Task.sleep(for: .milliseconds(300))
        #expect(pair.isShutDown)
        guarding.end()
        guarding.release(stuck)
    }
}
