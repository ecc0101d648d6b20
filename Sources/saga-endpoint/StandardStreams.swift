import Foundation
import Synchronization

/// Writes to stdout and stderr for the whole process: one record at a time (a write larger than a pipe's
/// 4 KiB buffer goes in pieces, and another thread's record landed between them), and never trapping when
/// the stream cannot be written. Foundation's `FileHandle.write(_: Data)` traps on a failed write (a full
/// disk under the log, a closed stderr): the process died at its first log line.
///
/// A failed write to stdout is remembered, not dropped: stdout carries a command's result (`errors list`,
/// `sagas list`, `topology export`), and a command whose result was lost must not exit 0. Before,
/// `errors list > listing.json` on a full disk exited 0 with an empty file, as for an empty queue, and
/// `topology export > defs.json` died of the trap above.
enum StandardStreams {
    private static let state = Mutex<String?>(nil)

    static func write(_ text: String, to handle: FileHandle) {
        state.withLock { outputFailure in
            do {
                try handle.write(contentsOf: Data(text.utf8))
            } catch where handle.fileDescriptor == STDOUT_FILENO {
                outputFailure = outputFailure ?? reason(error)
            } catch {
                // stderr: nowhere left to say so.
            }
        }
    }

    /// The POSIX reason ("No space left on device") rather than Foundation's paraphrase of it.
    private static func reason(_ error: any Error) -> String {
        let error = error as NSError
        if let posix = error.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        return error.localizedDescription
    }

    /// Why stdout could not be written, if a write to it failed; nil when all of it was written. The
    /// commands print their results through `write` (`printLine`), not `print`: Swift's `print` buffers
    /// in C's stdio, whose failures surface only when the buffer is flushed at exit, and are ignored there.
    static func outputFailure() -> String? {
        state.withLock { $0 }
    }
}
