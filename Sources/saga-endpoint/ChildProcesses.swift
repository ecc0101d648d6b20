import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The endpoint processes the demo starts: this same executable with another subcommand, output to a log
/// file each. A child learns its parent's pid (`parentPIDVariable`) and shuts down gracefully if the
/// parent disappears, so a killed demo leaves no consumers behind.
actor ChildSupervisor {
    static let parentPIDVariable = "SAGA_ENDPOINT_PARENT_PID"

    struct Child {
        var name: String
        var process: Process
        var logPath: String
    }

    struct Exit: Sendable {
        var name: String
        var status: Int32
        var bySignal: Bool
        var killed: Bool
        var logPath: String

        var clean: Bool { status == 0 && !bySignal && !killed }
    }

    private var children: [Child] = []

    /// The running executable (resolved from /proc/self/exe on Linux).
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
    }

    /// Settings of the operator's own endpoint that the demo's children must not pick up: a config file
    /// (its `http-port` would make both children bind one port; its bank fees would change the outcomes)
    /// and the HTTP port. Their databases are given as flags.
    static let operatorSettings = ["SAGA_CONFIG", "HTTP_PORT", "SAGA_DATABASE", "BANK_DATABASE"]

    /// The parent's environment without `operatorSettings`, with `adding` on top.
    static func childEnvironment(parent: [String: String], adding: [String: String]) -> [String: String] {
        var result = parent
        for key in operatorSettings { result.removeValue(forKey: key) }
        result.merge(adding) { _, new in new }
        return result
    }

    /// Starts `executable arguments…` with `environment` added; returns its pid.
    func spawn(name: String, arguments: [String], environment: [String: String], logPath: String) throws -> Int32 {
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
              let log = FileHandle(forWritingAtPath: logPath)
        else { throw CLIError("cannot create \(logPath)") }
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = arguments
        var fullEnvironment = Self.childEnvironment(parent: ProcessInfo.processInfo.environment, adding: environment)
        fullEnvironment[Self.parentPIDVariable] = "\(getpid())"
        process.environment = fullEnvironment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        do {
            try process.run()
        } catch {
            throw CLIError("cannot start \(name) (\(Self.executable)): \(error)")
        }
        children.append(Child(name: name, process: process, logPath: logPath))
        return process.processIdentifier
    }

    var pids: [Int32] { children.map(\.process.processIdentifier) }

    /// The first child that already exited, if any (a child should run until it is told to stop).
    func exitedChild() -> Exit? {
        children.first { !$0.process.isRunning }.map {
            Exit(name: $0.name, status: $0.process.terminationStatus, bySignal: $0.process.terminationReason == .uncaughtSignal,
                 killed: false, logPath: $0.logPath)
        }
    }

    /// SIGTERM to every child, then waits up to `timeout` for them to exit; SIGKILL for those still running.
    func terminateAll(timeout: Duration) async -> [Exit] {
        for child in children where child.process.isRunning { kill(child.process.processIdentifier, SIGTERM) }
        let deadline = ContinuousClock.now + timeout
        while children.contains(where: { $0.process.isRunning }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        var exits: [Exit] = []
        for child in children {
            var killed = false
            if child.process.isRunning {
                kill(child.process.processIdentifier, SIGKILL)
                child.process.waitUntilExit()
                killed = true
            }
            exits.append(Exit(name: child.name, status: child.process.terminationStatus,
                              bySignal: child.process.terminationReason == .uncaughtSignal, killed: killed, logPath: child.logPath))
        }
        children.removeAll()
        return exits
    }

    /// The last `lines` lines of a child's log, for error messages.
    static func tail(_ path: String, lines: Int = 15) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

/// A service that returns when the process that started this one is gone (its parent pid changes),
/// which shuts the service group down gracefully. Ends at once on graceful shutdown.
struct ParentWatch: Service {
    let parent: Int32
    let logger: Logger

    /// The watch for a child of the demo (`ChildSupervisor.parentPIDVariable` set), else nil.
    static func fromEnvironment(logger: Logger) -> ParentWatch? {
        guard let text = Environment.value(ChildSupervisor.parentPIDVariable), let pid = Int32(text), pid > 1 else { return nil }
        return ParentWatch(parent: pid, logger: logger)
    }

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            if getppid() != parent {
                logger.warning("parent process \(parent) is gone; shutting down")
                return
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// Progress on stderr: a redrawn bar on a terminal, else a line every few seconds.
struct ProgressReporter: Sendable {
    let isTerminal = isatty(STDERR_FILENO) != 0
    let start = ContinuousClock.now

    var interval: Duration { isTerminal ? .milliseconds(200) : .seconds(5) }

    func show(_ progress: DemoTracker.Progress) {
        let text = Self.line(progress, start: start, now: .now)
        if isTerminal {
            let width = 30
            let filled = progress.total > 0 ? width * progress.ended / progress.total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[K[\(bar)] \(text)".utf8))
        } else {
            printError("demo: \(text)")
        }
    }

    /// "ended/total transfers, payouts, rate, seconds". The rate counts from the first request, as the
    /// summary's throughput does; it used to count from the demo's start (its processes starting up too),
    /// which made it a fraction of the summary's figure on a short run.
    static func line(_ progress: DemoTracker.Progress, start: ContinuousClock.Instant, now: ContinuousClock.Instant) -> String {
        func seconds(since instant: ContinuousClock.Instant, until end: ContinuousClock.Instant = now) -> Double {
            let elapsed = end - instant
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
        // Once all have ended, up to the last one (the demo then waits for the payouts and its processes).
        let end = progress.ended == progress.total ? progress.lastTerminalAt ?? now : now
        let sending = progress.startedAt.map { seconds(since: $0, until: end) } ?? 0
        let rate = sending > 0 ? Double(progress.ended) / sending : 0
        let stalled = progress.stalled > 0 ? ", \(progress.stalled) stalled" : ""
        return "\(progress.ended)/\(progress.total) transfers, \(progress.payouts)/\(progress.batches) payouts\(stalled), "
            + String(format: "%.0f/s, %.0f s", rate, seconds(since: start))
    }

    /// Ends the redrawn line.
    func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
