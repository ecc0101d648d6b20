// A RabbitMQ node of a test's own (started through scripts/broker.sh with its own name, ports and folder),
// for tests that stop, kill, restart or reconfigure the broker without disturbing the shared one.
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A separate RabbitMQ node on free ports of 127.0.0.1, with its data in a temporary folder.
///
///     let node = try DedicatedBrokerNode.start()          // blocks ~8 s (longer when several boot at
///                                                         // once); see `runOnThread`
///     defer { node.shutdown() }
///     … connect to node.url …
///     try node.stop(); try node.start()                   // a restart keeping queues and messages
///
/// All methods block (they run scripts/broker.sh or rabbitmqctl) and are safe to call from any thread.
/// A node still up when its last reference goes away is shut down then.
public final class DedicatedBrokerNode: Sendable {
    /// Limits how many nodes boot at once (see `start(name:extraConfig:tls:)`); restarts are not limited.
    private static let bootSlots = DispatchSemaphore(value: 2)

    /// The node name (`NAME@localhost`).
    public let name: String
    /// The AMQP port on 127.0.0.1.
    public let port: Int
    /// The Erlang distribution port (rabbitmqctl talks to the node through it).
    public let distPort: Int
    /// The TLS listener's port when the node was started with a `TLSFixture`.
    public let tlsPort: Int?
    /// The folder holding the node's data (`directory/name`) and its extra config.
    public let directory: String

    private let extraConfigPath: String?
    private let isShutDown = Locked(false)

    /// `amqp://guest:guest@127.0.0.1:PORT/`
    public var url: String { "amqp://guest:guest@127.0.0.1:\(port)/" }

    /// `amqps://guest:guest@localhost:TLSPORT/` when the node has a TLS listener (the server certificate
    /// is for `localhost` and 127.0.0.1).
    public var tlsURL: String? { tlsPort.map { "amqps://guest:guest@localhost:\($0)/" } }

    /// The node's log folder (startup.log holds the boot output).
    public var logDirectory: String { "\(directory)/\(name)/log" }

    /// Starts a new node on free ports and returns once it accepts AMQP connections. `extraConfig` is
    /// appended to its rabbitmq.conf (rabbitmq.conf lines). With `tls`, the node also gets a TLS listener
    /// on a free port (`tlsPort`, `tlsURL`) using the fixture's CA and server certificate. Retries on fresh
    /// ports when a start fails (another process took a port in the meantime).
    public static func start(
        name: String? = nil,
        extraConfig: String? = nil,
        tls: TLSFixture? = nil
    ) throws -> DedicatedBrokerNode {
        // At most two first boots at a time: each takes seconds of CPU, and a full test run starts about
        // ten of them in its first seconds, which loaded the machine so much (load average 50 and more on
        // two cores) that unrelated tests missed their heartbeats and time limits.
        bootSlots.wait()
        defer { bootSlots.signal() }
        var failures: [String] = []
        for _ in 1...3 {
            let ports = try reserveFreePorts(count: tls == nil ? 2 : 3)
            let tlsPort = tls == nil ? nil : ports[2]
            let directory = try makeBrokerReachableTemporaryDirectory(prefix: "saga-broker")
            var config = extraConfig.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" } ?? ""
            if let tls, let tlsPort { config += tls.rabbitmqConfig(port: tlsPort) }
            var configPath: String?
            if !config.isEmpty {
                let path = "\(directory)/extra.conf"
                do {
                    try config.write(toFile: path, atomically: true, encoding: .utf8)
                    try ServiceUser.handOver(path)
                } catch {
                    try? FileManager.default.removeItem(atPath: directory)
                    throw BrokerTestSupportError("cannot write \(path): \(error)")
                }
                configPath = path
            }
            let node = DedicatedBrokerNode(
                name: name ?? TestBroker.uniqueName("test-broker"),
                port: ports[0],
                distPort: ports[1],
                tlsPort: tlsPort,
                directory: directory,
                extraConfigPath: configPath
            )
            do {
                try node.start()
                return node
            } catch {
                failures.append(String(describing: error))
                node.shutdown()
                if String(describing: error).contains("another node named") { break }  // new ports won't help
            }
        }
        throw BrokerTestSupportError(
            "a dedicated broker node did not start (\(failures.count) attempts):\n"
                + failures.joined(separator: "\n---\n")
        )
    }

    private init(name: String, port: Int, distPort: Int, tlsPort: Int?, directory: String, extraConfigPath: String?) {
        self.name = name
        self.port = port
        self.distPort = distPort
        self.tlsPort = tlsPort
        self.directory = directory
        self.extraConfigPath = extraConfigPath
    }

    deinit {
        shutdown()
    }

    /// Starts the node again after `stop()` or `kill()`, on the same ports and with the same data (durable
    /// queues and persistent messages survive). Returns once it accepts AMQP connections.
    public func start() throws {
        try script(["start"])
    }

    /// Replaces the lines appended to the node's rabbitmq.conf; they take effect at the next `start()`
    /// (stop the node first). Only for a node started with an `extraConfig`.
    public func reconfigure(extraConfig: String) throws {
        guard let extraConfigPath else {
            throw BrokerTestSupportError("node \(name) was started without an extra config; start it with one to reconfigure it")
        }
        do {
            try (extraConfig.hasSuffix("\n") ? extraConfig : extraConfig + "\n")
                .write(toFile: extraConfigPath, atomically: true, encoding: .utf8)
            try ServiceUser.handOver(extraConfigPath)
        } catch {
            throw BrokerTestSupportError("cannot write \(extraConfigPath): \(error)")
        }
    }

    /// Stops the node gracefully; returns once its port is closed.
    public func stop() throws {
        try script(["stop"])
    }

    /// Kills the node's Erlang VM with SIGKILL (a crash, no goodbye to clients) and waits until its port is
    /// closed. `start()` brings it back.
    public func kill() throws {
        guard let pid = runningVMProcessID() else {
            throw BrokerTestSupportError("node \(name) is not running (no live pid in \(directory)/\(name)/pid)")
        }
        guard sendSignal(pid, SIGKILL) == 0 || errno == ESRCH else {
            throw BrokerTestSupportError("kill -9 \(pid) failed: \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while isAcceptingConnections || processExists(pid) {
            guard ContinuousClock.now < deadline else {
                throw BrokerTestSupportError("node \(name) (pid \(pid)) still up 30 s after SIGKILL")
            }
            usleep(20_000)
        }
    }

    /// The pid of the node's Erlang VM from its pid file, if that process is alive and (where /proc exists)
    /// really is this node.
    private func runningVMProcessID() -> Int32? {
        guard let text = try? String(contentsOfFile: "\(directory)/\(name)/pid", encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
              processExists(pid)
        else { return nil }
        if FileManager.default.fileExists(atPath: "/proc/self/environ") {
            guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
            let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard variables.contains("RABBITMQ_NODENAME=\(name)@localhost") else { return nil }
        }
        return pid
    }

    /// Whether `pid` is alive (a zombie awaiting its parent's wait() counts as gone).
    private func processExists(_ pid: Int32) -> Bool {
        guard sendSignal(pid, 0) == 0 || errno == EPERM else { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let end = stat.lastIndex(of: ")") {
            return !stat[stat.index(after: end)...].hasPrefix(" Z")
        }
        return true
    }

    /// Whether something accepts TCP connections on the node's AMQP port right now.
    public var isAcceptingConnections: Bool {
        canConnect(port: port)
    }

    /// Runs `rabbitmqctl ARGS…` against this node and returns its standard output (see
    /// `TestBroker.rabbitmqctl`).
    @discardableResult
    public func rabbitmqctl(_ args: [String]) throws -> String {
        try script(["ctl"] + args)
    }

    /// Closes every client connection to this node (clients see a connection.close from the server).
    public func closeAllConnections() throws {
        try rabbitmqctl(["close_all_connections", "closed by a test"])
    }

    /// Kills the node (SIGKILL; its data is going anyway) and deletes its folder. Safe to call more than
    /// once; never throws.
    public func shutdown() {
        let first = isShutDown.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        // The data goes away, so there's nothing to stop gracefully: a SIGKILL is much quicker.
        if (try? kill()) == nil {
            _ = try? script(["stop"])
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    private func script(_ arguments: [String]) throws -> String {
        let environment = [
            "BROKER_NAME": name,
            "BROKER_PORT": String(port),
            "BROKER_DIST_PORT": String(distPort),
            "BROKER_DIR": directory,
            "BROKER_EXTRA_CONFIG": extraConfigPath ?? "",
        ]
        return try runBrokerScript(arguments, environment: environment)
    }

    // MARK: Ports

    /// Ports handed out by this process, never handed out twice (parallel tests start nodes concurrently).
    private static let handedOut = Locked<Set<Int>>([])

    /// A free TCP port on 127.0.0.1 (for a listener of your own), never one this process handed out before.
    public static func freePort() throws -> Int {
        try reserveFreePorts(count: 1)[0]
    }

    /// `count` distinct free ports: bound at once to 127.0.0.1:0 so the kernel picks unused ones, skipping
    /// ports handed out earlier and rabbitmqctl's own distribution range (35672–35682).
    static func reserveFreePorts(count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        var ports: [Int] = []
        var attempts = 0
        while ports.count < count {
            attempts += 1
            guard attempts < 200 else { throw BrokerTestSupportError("no free ports on 127.0.0.1") }
            let (socket, port) = try bindEphemeralPort()
            sockets.append(socket)
            if (35600...35799).contains(port) { continue }
            let fresh = handedOut.withLock { $0.insert(port).inserted }
            if fresh { ports.append(port) }
        }
        return ports
    }

    private static func bindEphemeralPort() throws -> (socket: Int32, port: Int) {
        #if canImport(Glibc) || canImport(Musl)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw BrokerTestSupportError("socket() failed: \(String(cString: strerror(errno)))") }
        var address = loopback(port: 0)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        var actual = sockaddr_in()
        var actualLength = length
        let named = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
        }
        guard bound == 0, named == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw BrokerTestSupportError("cannot bind a free port on 127.0.0.1: \(message)")
        }
        return (fd, Int(UInt16(bigEndian: actual.sin_port)))
    }
}

func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

/// Whether a TCP connection to 127.0.0.1:`port` succeeds right now.
func canConnect(port: Int) -> Bool {
    #if canImport(Glibc) || canImport(Musl)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = loopback(port: port)
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    return result == 0
}
