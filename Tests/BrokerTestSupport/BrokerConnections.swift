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
}
