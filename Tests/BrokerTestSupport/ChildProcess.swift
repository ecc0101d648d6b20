// A child process for tests (an endpoint, the simulated bank, a bench run): launched at init, its stdout and
// stderr captured into files, killable with any signal, and waitable with a timeout.
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A launched child process. Safe to share between tasks and threads.
///
///     let endpoint = try ChildProcess(executable: binary, arguments: ["run"], environment: ["AMQP_URL": url])
///     defer { endpoint.kill(signal: SIGKILL) }
///     try await waitUntil(timeout: .seconds(10)) { endpoint.outputLines().contains { $0.contains("ready") } }
///     endpoint.kill(signal: SIGTERM)
///     #expect(try endpoint.waitUntilExit(timeout: .seconds(10)) == 0)
///
/// The output files live in a temporary folder that is deleted when the object goes away; a child still
/// running then is killed with SIGKILL.
public final class ChildProcess: Sendable {
    /// The resolved path of the executable.
    public let executable: String
    public let arguments: [String]
    /// The files receiving the child's standard output and standard error.
    public let standardOutputPath: String
    public let standardErrorPath: String
    /// The child's process id.
    public let pid: Int32

    private let process: Process
    private let outputDirectory: String
    private let exited: DispatchGroup
    private let termination: Locked<Termination?>

    private struct Termination: Sendable {
        var status: Int32
        var bySignal: Bool
    }

    /// Launches `executable` (a path, or a name looked up in PATH) with `arguments`. `environment` is added
    /// to (and overrides) this process's environment, unless `inheritEnvironment` is false. Standard input is
    /// /dev/null.
    public init(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        inheritEnvironment: Bool = true,
        currentDirectory: String? = nil
    ) throws {
        var fullEnvironment = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        fullEnvironment.merge(environment) { _, new in new }
        let resolved = try Self.resolve(executable, path: fullEnvironment["PATH"])
        self.executable = resolved
        self.arguments = arguments

        outputDirectory = try Self.makeOutputDirectory()
        standardOutputPath = (outputDirectory as NSString).appendingPathComponent("stdout.log")
        standardErrorPath = (outputDirectory as NSString).appendingPathComponent("stderr.log")
        guard FileManager.default.createFile(atPath: standardOutputPath, contents: nil),
              FileManager.default.createFile(atPath: standardErrorPath, contents: nil),
              let stdout = FileHandle(forWritingAtPath: standardOutputPath),
              let stderr = FileHandle(forWritingAtPath: standardErrorPath)
        else {
            try? FileManager.default.removeItem(atPath: outputDirectory)
            throw BrokerTestSupportError("cannot create output files in \(outputDirectory)")
        }
        defer {
            try? stdout.close()
            try? stderr.close()
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: resolved)
        process.arguments = arguments
        process.environment = fullEnvironment
        if let currentDirectory {
            process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory)
        }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr

        let exited = DispatchGroup()
        let termination = Locked<Termination?>(nil)
        exited.enter()
        process.terminationHandler = { finished in
            let bySignal = finished.terminationReason == .uncaughtSignal
            termination.withLock { $0 = Termination(status: finished.terminationStatus, bySignal: bySignal) }
            exited.leave()
        }
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(atPath: outputDirectory)
            throw BrokerTestSupportError("cannot launch \(resolved): \(error)")
        }
        self.process = process
        self.exited = exited
        self.termination = termination
        pid = process.processIdentifier
    }

    deinit {
        if isRunning {
            _ = sendSignal(pid, SIGKILL)
            _ = exited.wait(timeout: .now() + 5)
        }
        try? FileManager.default.removeItem(atPath: outputDirectory)
    }

    /// Whether the child has not exited yet.
    public var isRunning: Bool {
        termination.withLock { $0 == nil }
    }

    /// The exit status once the child has exited (the signal number when a signal ended it), else nil.
    public var terminationStatus: Int32? {
        termination.withLock { $0?.status }
    }

    /// Whether the child was ended by a signal (then `terminationStatus` is the signal's number).
    public var terminatedBySignal: Bool {
        termination.withLock { $0?.bySignal ?? false }
    }

    /// Sends `signal` (SIGTERM by default; SIGKILL, SIGINT, SIGSTOP, …) to the child, if it is still running.
    public func kill(signal: Int32 = 15 /* SIGTERM */) {
        guard isRunning else { return }
        _ = sendSignal(pid, signal)
    }

    /// Sends `signal` to the child's whole process group (the child and the processes it started, unless
    /// they moved to a group of their own), if the child is still running and leads its group, as children
    /// launched by Foundation do; otherwise to the child alone.
    public func killProcessGroup(signal: Int32 = 15 /* SIGTERM */) {
        guard isRunning else { return }
        if getpgid(pid) == pid {
            _ = sendSignal(-pid, signal)
        } else {
            _ = sendSignal(pid, signal)
        }
    }

    /// Blocks until the child exits and returns its exit status (the signal's number when a signal ended it);
    /// throws when it is still running after `timeout`.
    @discardableResult
    public func waitUntilExit(timeout: Duration) throws -> Int32 {
        guard exited.wait(timeout: .now() + timeout.seconds) == .success, let status = terminationStatus else {
            throw BrokerTestSupportError(
                "\(executable) (pid \(pid)) still running after \(timeout); stderr so far:\n\(errorOutput())"
            )
        }
        return status
    }

    /// Everything the child has written to standard output so far.
    public func output() -> String {
        Self.read(standardOutputPath)
    }

    /// Everything the child has written to standard error so far.
    public func errorOutput() -> String {
        Self.read(standardErrorPath)
    }

    /// The complete lines the child has written to standard output so far (a trailing partial line is left
    /// out until its newline arrives).
    public func outputLines() -> [String] {
        Self.lines(output())
    }

    /// The complete lines the child has written to standard error so far.
    public func errorLines() -> [String] {
        Self.lines(errorOutput())
    }

    private static func read(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    private static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.removeLast()  // what follows the last newline: empty, or a line still being written
        return lines
    }

    private static func resolve(_ executable: String, path: String?) throws -> String {
        if executable.contains("/") {
            guard FileManager.default.isExecutableFile(atPath: executable) else {
                throw BrokerTestSupportError("\(executable) is not an executable file")
            }
            return executable
        }
        for folder in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = (String(folder) as NSString).appendingPathComponent(executable)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw BrokerTestSupportError("\(executable) not found in PATH")
    }

    private static func makeOutputDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("child-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
        guard created else {
            throw BrokerTestSupportError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// kill(2), which the method `ChildProcess.kill(signal:)` shadows inside the class.
func sendSignal(_ pid: Int32, _ signal: Int32) -> Int32 {
    kill(pid, signal)
}
