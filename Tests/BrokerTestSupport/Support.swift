// Shared plumbing for the broker test helpers: errors, running a command to completion, locating the repo,
// and running blocking helpers off the cooperative thread pool.
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from the broker test helpers; `description` says what failed and includes the command output.
public struct BrokerTestSupportError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Runs `body` on a fresh thread and returns its result, so blocking helpers (starting a node, rabbitmqctl)
/// don't occupy a thread of Swift concurrency's small cooperative pool:
///
///     let node = try await runOnThread { try DedicatedBrokerNode.start() }
public func runOnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}

/// The outcome of a command that ran to completion.
struct CommandResult: Sendable {
    var status: Int32
    var output: String
    var errorOutput: String

    var combinedOutput: String {
        [output, errorOutput].filter { !$0.isEmpty }.joined(separator: "\n")
    }
}

/// Runs a command to completion (stdout and stderr go through files, never pipes) and returns its result.
func runCommand(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String] = [:],
    currentDirectory: String? = nil,
    timeout: Duration = .seconds(180)
) throws -> CommandResult {
    let child = try ChildProcess(
        executable: executable,
        arguments: arguments,
        environment: environment,
        currentDirectory: currentDirectory
    )
    let status: Int32
    do {
        status = try child.waitUntilExit(timeout: timeout)
    } catch {
        child.killProcessGroup(signal: SIGKILL)  // its children too (rabbitmqctl VMs)
        throw error
    }
    return CommandResult(status: status, output: child.output(), errorOutput: child.errorOutput())
}

/// Runs a command and throws, with its output, when it exits non-zero.
@discardableResult
func runChecked(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String] = [:],
    currentDirectory: String? = nil,
    timeout: Duration = .seconds(180)
) throws -> String {
    let result = try runCommand(
        executable, arguments, environment: environment, currentDirectory: currentDirectory, timeout: timeout
    )
    guard result.status == 0 else {
        let command = ([executable] + arguments).joined(separator: " ")
        throw BrokerTestSupportError("`\(command)` exited with \(result.status):\n\(result.combinedOutput)")
    }
    return result.output
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

enum Repository {
    /// The folder holding Package.swift, found by walking up from this source file (or, failing that,
    /// from the current directory).
    static let root: Result<URL, BrokerTestSupportError> = {
        let starts = [
            URL(fileURLWithPath: #filePath).deletingLastPathComponent(),
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        ]
        for start in starts {
            var folder = start.standardizedFileURL
            while true {
                if FileManager.default.fileExists(atPath: folder.appendingPathComponent("Package.swift").path) {
                    return .success(folder)
                }
                let parent = folder.deletingLastPathComponent()
                if parent.path == folder.path { break }
                folder = parent
            }
        }
        return .failure(BrokerTestSupportError("cannot find the package root (a folder with Package.swift) above \(#filePath)"))
    }()

    static func brokerScript() throws -> String {
        let script = try root.get().appendingPathComponent("scripts/broker.sh").path
        guard FileManager.default.fileExists(atPath: script) else {
            throw BrokerTestSupportError("missing \(script)")
        }
        return script
    }
}

/// Runs `scripts/broker.sh ARGS…` with the given BROKER_* environment.
@discardableResult
func runBrokerScript(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
    // `start` may wait up to 3 minutes for a slow boot.
    try runChecked(
        "/bin/bash", [try Repository.brokerScript()] + arguments, environment: environment, timeout: .seconds(300)
    )
}

/// The `rabbitmq` service user, which owns broker folders when the tests run as root.
enum ServiceUser {
    static var isRoot: Bool { geteuid() == 0 }

    /// Makes `path` reachable by the broker: world-readable/traversable, and owned by `rabbitmq` when root.
    static func handOver(_ path: String, recursive: Bool = false) throws {
        var paths = [path]
        if recursive, let enumerator = FileManager.default.enumerator(atPath: path) {
            while let relative = enumerator.nextObject() as? String {
                paths.append((path as NSString).appendingPathComponent(relative))
            }
        }
        for item in paths {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: item, isDirectory: &isDirectory)
            guard chmod(item, isDirectory.boolValue ? 0o755 : 0o644) == 0 else {
                throw BrokerTestSupportError("chmod \(item) failed: \(String(cString: strerror(errno)))")
            }
            if isRoot, let ids = rabbitmqIDs {
                guard chown(item, ids.uid, ids.gid) == 0 else {
                    throw BrokerTestSupportError("chown rabbitmq \(item) failed: \(String(cString: strerror(errno)))")
                }
            }
        }
    }

    private static let rabbitmqIDs: (uid: uid_t, gid: gid_t)? = {
        guard let entry = getpwnam("rabbitmq") else { return nil }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }()
}

/// Creates a fresh folder `/tmp/PREFIX-XXXXXX` (or under TMPDIR when not root) the broker can reach.
func makeBrokerReachableTemporaryDirectory(prefix: String) throws -> String {
    let base = ServiceUser.isRoot ? "/tmp" : NSTemporaryDirectory()
    var template = Array(((base as NSString).appendingPathComponent("\(prefix)-XXXXXX")).utf8CString)
    let created = template.withUnsafeMutableBufferPointer { buffer -> Bool in
        mkdtemp(buffer.baseAddress!) != nil
    }
    guard created else {
        throw BrokerTestSupportError("mkdtemp in \(base) failed: \(String(cString: strerror(errno)))")
    }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    try ServiceUser.handOver(path)
    return path
}

/// A small lock-protected box (Foundation only; `Synchronization.Mutex` needs macOS 15).
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
