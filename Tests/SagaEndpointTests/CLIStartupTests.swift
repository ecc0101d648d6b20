// What `saga-endpoint run` does before it has a broker: checks that need none stop it at once, and
// while it waits for the broker it answers health checks and stops on a signal.
import BrokerTestSupport
import Foundation
import Testing

@Suite("saga-endpoint start-up", .timeLimit(.minutes(3)))
struct CLIStartupTests {
    /// A URL where no broker listens (a free port), so `run` keeps retrying.
    static func unreachableURL() throws -> String {
        "amqp://guest:guest@127.0.0.1:\(try DedicatedBrokerNode.freePort())/"
    }

    // Failed before, with the topology: it was declared before the service group started, so the HTTP
    // server refused connections (an orchestrator's liveness probe kills such a pod) and SIGTERM killed
    // the process (143). Without it: the endpoint's own wait ignored the graceful shutdown, which then
    // waited out the 30 s limit and cancelled.
    @Test("while the broker cannot be reached: live 200, ready 503, and SIGTERM stops it with exit 0",
          arguments: [true, false])
    func waitingForTheBroker(declareTopology: Bool) async throws {
        let run = try RunProcess(url: try Self.unreachableURL(), label: "unreachable", logLevel: "info",
                                 extraArguments: declareTopology ? [] : ["--no-declare-topology"])
        defer { run.cleanUp() }
        try await waitUntil(timeout: .seconds(30), message: "/health/live while waiting for the broker") {
            await OperationsHTTP.get(run.httpPort, "/health/live")?.status == 200
        }
        let ready = await OperationsHTTP.get(run.httpPort, "/health/ready")
        #expect(ready?.status == 503, "\(ready?.body ?? "no answer")")
        try await waitUntil(timeout: .seconds(20), message: "retrying") {
            run.process.errorOutput().contains("broker unreachable; retrying")
        }
        run.process.kill(signal: SIGTERM)
        let status = try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(10)) }
        #expect(status == 0, "\(run.process.errorOutput().suffix(1500))")
    }

    // Failed before: `run` declared the topology first, so with the broker away it waited for ever; with
    // a broker it failed after declaring, with SQLite's bare "unable to open database file".
    @Test("a database that cannot be opened stops run at once, naming the path")
    func databaseThatCannotBeOpened() async throws {
        let path = "/nonexistent-\(UUID().uuidString)/s.sqlite"
        let process = try ChildProcess(executable: CLIProcessTests.executablePath,
                                       arguments: ["run", "--amqp-url", try Self.unreachableURL(), "--database", path])
        defer { process.kill(signal: SIGKILL) }
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(20)) }
        #expect(status != 0)
        #expect(process.errorOutput().contains("cannot use the database \(path): its folder"), "\(process.errorOutput().suffix(1500))")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    // Failed before: the port was bound only once the service group ran, after the topology (with the
    // broker away: never), and the error named neither host nor port.
    @Test("an HTTP port in use stops run at once, naming the address")
    func httpPortInUse() async throws {
        let holder = try ListeningSocket()
        defer { holder.close() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("port-in-use-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: [
            "run", "--amqp-url", try Self.unreachableURL(), "--database", directory.appendingPathComponent("s.sqlite").path,
            "--http-port", "\(holder.port)"])
        defer { process.kill(signal: SIGKILL) }
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(20)) }
        #expect(status != 0)
        #expect(process.errorOutput().contains("cannot listen on 127.0.0.1:\(holder.port)"),
                "\(process.errorOutput().suffix(1500))")
    }
}

/// A TCP socket listening on a free loopback port, so that nobody else can listen there.
private struct ListeningSocket {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 1) == 0 else { throw BrokerTestSupportError("cannot listen: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(descriptor) }
}
