import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import Testing

/// `saga-endpoint demo` pointed at a vhost where an endpoint already runs.
@Suite("saga-endpoint demo in a busy vhost", .timeLimit(.minutes(4)))
struct CLIDemoGuardTests {
    // Found by an operations review: with AMQP_URL pointing at a live vhost, `demo` gave no warning,
    // started its own endpoint and bank there and published its transfers; the live endpoint took some of
    // them (demo sagas stuck in its database) and the demo's took the live bank's replies.
    @Test("the demo refuses to start when its queues already have consumers, and publishes nothing")
    func refusesBusyQueues() async throws {
        let harness = try await EndpointHarness.make()
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(60)), queues: ["transfers"],
                                             database: "live")
        try await waitUntil(timeout: .seconds(30)) { try await harness.connection.checkQueue("transfers").consumerCount == 1 }
        let process = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: [
            "demo", "--transfers", "3", "--batches", "0", "--amqp-url", harness.url, "--log-level", "warning"])
        let status: Int32
        do {
            status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        } catch {
            process.killProcessGroup(signal: SIGKILL)
            throw error
        }
        let run = CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
        #expect(run.status == 1, "\(run)")
        #expect(run.errorOutput.contains("transfers (1)") && run.errorOutput.contains("vhost of its own"), "\(run)")
        #expect(try await harness.rowCount("live", "inbox") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
