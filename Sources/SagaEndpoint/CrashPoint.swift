#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Places in the pipeline where tests kill the endpoint process hard, to prove that a crash at any point
/// loses nothing and duplicates no effect. Only debug builds (which tests use) honour them:
/// `SAGA_CRASH_POINT=after-commit SAGA_CRASH_AFTER=3` sends SIGKILL to the process the third time the
/// pipeline passes that point (each batch passes each point once).
enum CrashPoint: String, Sendable {
    /// The batch's deliveries were received and translated; nothing is committed.
    case afterReceive = "after-receive"
    /// The batch's transaction committed (inbox, state, outbox, timeouts); nothing is published.
    case afterCommit = "after-commit"
    /// The outgoing messages were written to the socket, their confirms not awaited yet.
    case afterPublish = "after-publish"
    /// The outgoing messages were confirmed (their rows are marked dispatched by the next transaction,
    /// `DispatchMarks`, so a crash here sends them again); no delivery is acknowledged yet.
    case afterConfirm = "after-confirm"

    #if DEBUG
    private static let configured: (point: CrashPoint, after: Int)? = {
        let environment = ProcessInfo.processInfo.environment
        guard let name = environment["SAGA_CRASH_POINT"], let point = CrashPoint(rawValue: name) else { return nil }
        return (point, Int(environment["SAGA_CRASH_AFTER"] ?? "1") ?? 1)
    }()
    // Touched by one batch at a time: the processing task, or the publisher's thread while that task
    // awaits the publish (after-publish).
    private nonisolated(unsafe) static var passes = 0
    #endif

    func check() {
        #if DEBUG
        guard let configured = Self.configured, configured.point == self else { return }
        Self.passes += 1
        if Self.passes >= configured.after {
            FileHandle.standardError.write(Data("crash point \(rawValue) reached: SIGKILL\n".utf8))
            kill(getpid(), SIGKILL)
        }
        #endif
    }
}
