// Finding and closing one client connection by the name the client gave it (the `connection_name` client
// property; RabbitMQ 3.10's rabbitmqctl has no `user_provided_name` column, so it is read from
// `client_properties`).
import Foundation

/// The connections of a node whose `connection_name` client property is `name`, as Erlang pids
/// (`<rabbit@localhost.1700000000.1234.0>`), from `rabbitmqctl list_connections pid client_properties`.
func connectionPIDs(named name: String, rabbitmqctl: ([String]) throws -> String) throws -> [String] {
    let output = try rabbitmqctl(["-q", "list_connections", "--no-table-headers", "pid", "client_properties"])
    // rabbitmqctl 3.10 prints `{"connection_name","NAME"}`; other versions add the type (`longstr`).
    let needles = ["{\"connection_name\",\"\(name)\"}", "{\"connection_name\",longstr,\"\(name)\"}"]
    return output.split(separator: "\n").compactMap { line in
        guard needles.contains(where: { line.contains($0) }), let tab = line.firstIndex(of: "\t") else { return nil }
        return String(line[..<tab]).trimmingCharacters(in: .whitespaces)
    }
}

/// Closes the connections named `name` with `reason` (clients get connection.close 320 CONNECTION_FORCED);
/// returns how many were closed.
func closeConnections(named name: String, reason: String, rabbitmqctl: ([String]) throws -> String) throws -> Int {
    let pids = try connectionPIDs(named: name, rabbitmqctl: rabbitmqctl)
    for pid in pids { _ = try rabbitmqctl(["close_connection", pid, reason]) }
    return pids.count
}

extension TestBroker {
    /// The Erlang pids of the shared node's connections whose client named them `name` (the
    /// `connection_name` client property).
    public static func connectionPIDs(named name: String) throws -> [String] {
        try BrokerTestSupport.connectionPIDs(named: name, rabbitmqctl: { try rabbitmqctl($0) })
    }

    /// Closes the shared node's connections named `name` (see `connectionPIDs(named:)`), as an operator
    /// would with `rabbitmqctl close_connection`; returns how many it closed.
    @discardableResult
    public static func closeConnections(named name: String, reason: String = "closed by a test") throws -> Int {
        try BrokerTestSupport.closeConnections(named: name, reason: reason, rabbitmqctl: { try rabbitmqctl($0) })
    }
}

extension DedicatedBrokerNode {
    /// The Erlang pids of this node's connections whose client named them `name`.
    public func connectionPIDs(named name: String) throws -> [String] {
        try BrokerTestSupport.connectionPIDs(named: name, rabbitmqctl: { try rabbitmqctl($0) })
    }

    /// Closes this node's connections named `name`; returns how many it closed.
    @discardableResult
    public func closeConnections(named name: String, reason: String = "closed by a test") throws -> Int {
        try BrokerTestSupport.closeConnections(named: name, reason: reason, rabbitmqctl: { try rabbitmqctl($0) })
    }

    /// The pid of the node's Erlang VM (beam.smp), from its pid file; nil when the node is not running.
    /// For tests that freeze the broker with SIGSTOP (always SIGCONT it afterwards).
    public var vmProcessID: Int32? {
        guard let text = try? String(contentsOfFile: "\(directory)/\(name)/pid", encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
              sendSignal(pid, 0) == 0
        else { return nil }
        return pid
    }

    /// Freezes the node's Erlang VM with SIGSTOP and returns its pid once the VM has stopped (SIGCONT it
    /// afterwards). kill(2) only queues the signal: the VM stops when the thread the signal went to next
    /// runs, and until then its other threads go on answering clients. On a loaded machine that lasted
    /// longer than an endpoint's whole graceful shutdown against an answering broker (a few milliseconds),
    /// so a test that signalled the endpoint right after kill(2) once saw it finish instead of hang.
    public func freeze(timeout: Duration = .seconds(10)) throws -> Int32 {
        guard let pid = vmProcessID else {
            throw BrokerTestSupportError("node \(name) is not running (no live pid in \(directory)/\(name)/pid)")
        }
        guard sendSignal(pid, SIGSTOP) == 0 else {
            throw BrokerTestSupportError("kill -STOP \(pid) failed: \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now + timeout
        while !Self.allThreadsStopped(pid) {
            guard ContinuousClock.now < deadline else {
                _ = sendSignal(pid, SIGCONT)
                throw BrokerTestSupportError("node \(name) (pid \(pid)) not stopped \(timeout) after SIGSTOP")
            }
            usleep(1_000)
        }
        return pid
    }

    /// Whether no thread of `pid` runs any more: each is stopped (state T, or t when traced, in
    /// /proc/PID/task/TID/stat) or has ended (Z, X, or gone). Without /proc there is no telling: true, the
    /// SIGSTOP has been sent.
    private static func allThreadsStopped(_ pid: Int32) -> Bool {
        guard FileManager.default.fileExists(atPath: "/proc/self/stat") else { return true }
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return false }
        return threads.allSatisfy { thread in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/stat", encoding: .utf8),
                  let end = stat.lastIndex(of: ")") else { return true }
            let state = stat[stat.index(after: end)...].dropFirst().first
            return state.map { "TtZX".contains($0) } ?? false
        }
    }
}
