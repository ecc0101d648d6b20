// `/health/ready` of `saga-endpoint run` follows the broker: it stops a broker node of its own while the
// endpoint runs, and starts it again.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("saga-endpoint readiness", .timeLimit(.minutes(6)))
struct CLIReadinessTests {
    @Test("/health/ready answers 200, then 503 while the broker is down, then 200 once the endpoint recovered")
    func readinessFollowsTheBroker() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(name: "readiness-\(UInt16.random(in: 1000...9999))") }
        defer { node.shutdown() }
        let run = try RunProcess(url: node.url, label: "readiness", logLevel: "notice")
        defer { run.cleanUp() }
        let (process, port) = (run.process, run.httpPort)

        func ready() async -> Int? { await OperationsHTTP.get(port, "/health/ready")?.status }
        try await waitUntil(timeout: .seconds(60), message: "ready after start") { await ready() == 200 }

        try await runOnThread { try node.stop() }
        try await waitUntil(timeout: .seconds(20), message: "not ready while the broker is down") { await ready() == 503 }
        let notReady = await OperationsHTTP.get(port, "/health/ready")
        #expect(notReady?.body.contains("broker") == true, "\(notReady?.body ?? "")")
        #expect(await OperationsHTTP.get(port, "/health/live")?.status == 200)
        // It stays not ready while the broker is away (no flapping back to ready).
        try await Task.sleep(for: .seconds(2))
        #expect(await ready() == 503)

        try await runOnThread { try node.start() }
        try await waitUntil(timeout: .seconds(60), message: "ready again after the broker is back") { await ready() == 200 }
        // Both connections (consume and publish) were recovered, and counted.
        let metrics = await OperationsHTTP.metrics(port)
        #expect(metrics["saga_connection_recoveries_total"] == 2, "\(metrics.filter { $0.key.contains("recover") })")
        #expect(process.isRunning, "\(process.errorOutput().suffix(2000))")

        process.kill(signal: SIGTERM)
        #expect(try await runOnThread { try process.waitUntilExit(timeout: .seconds(15)) } == 0)
    }

    // Failed before: declaring the topology connected once and failed, so `run` exited 1 at once ("cannot
    // connect"), which a service manager turns into a restart loop; the README promises it waits.
    @Test("run started while the broker is down waits for it, then serves")
    func runWaitsForTheBroker() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(name: "late-broker-\(UInt16.random(in: 1000...9999))") }
        defer { node.shutdown() }
        try await runOnThread { try node.stop() }
        let run = try RunProcess(url: node.url, label: "late-broker")
        defer { run.cleanUp() }
        let (process, port) = (run.process, run.httpPort)

        try await Task.sleep(for: .seconds(3))
        #expect(process.isRunning, "it waits for the broker: \(process.errorOutput().suffix(1500))")
        #expect(process.errorOutput().contains("broker unreachable; retrying"))
        try await runOnThread { try node.start() }
        try await waitUntil(timeout: .seconds(60), message: "ready once the broker is up") {
            await OperationsHTTP.get(port, "/health/ready")?.status == 200
        }
        process.kill(signal: SIGTERM)
        #expect(try await runOnThread { try process.waitUntilExit(timeout: .seconds(15)) } == 0)
    }
}
