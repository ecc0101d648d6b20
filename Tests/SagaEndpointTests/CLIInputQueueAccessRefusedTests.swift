import BrokerTestSupport
import Foundation
import Testing

/// A user who may not read the input queues (no read permission in the vhost): the broker refuses
/// basic.consume with 403 ACCESS_REFUSED. `run` starts without those queues, not ready, and consumes them
/// once the permission is granted (a deliberate choice, InputQueueLostTests); but its log and its readiness
/// reason were the broker's bare channel error, which says neither which permission is missing nor how to
/// grant it. Now they name the queue, the vhost, the user and the read permission.
@Suite("saga-endpoint run: a user who may not read its input queue", .timeLimit(.minutes(3)))
struct CLIInputQueueAccessRefusedTests {
    // Failed before: the reason and the log were "AMQP channelClosed 403: ACCESS_REFUSED - access to queue …".
    @Test("run is not ready, naming the queue, the vhost, the user and the missing read permission; granting it is enough")
    func consumeRefused() async throws {
        let harness = try await EndpointHarness.make()
        let vhost = harness.vhost
        try await harness.withUser("no-read", configure: ".*", write: ".*", read: "") { user in
            let run = try RunProcess(url: user.url, label: "consume-refused", extraArguments: ["--no-declare-topology"])
            defer { run.cleanUp() }
            let expected = "user '\(user.name)' may not consume input queue 'transfers' in vhost '\(vhost)': "
                + "it needs read permission on 'transfers' (rabbitmqctl set_permissions -p '\(vhost)' '\(user.name)' "
            try await waitUntil(timeout: .seconds(60), message: "not ready, naming the permission") {
                await OperationsHTTP.get(run.httpPort, "/health/ready")?.body.contains(expected) == true
            }
            let log = run.process.errorOutput()
            #expect(log.contains("error=\(expected)"), "\(log)")
            #expect(log.contains("ACCESS_REFUSED"), "the broker's text is kept: \(log)")
            #expect(!log.contains("no-read-secret"), "\(log)")

            try await user.permit(configure: ".*", write: ".*", read: ".*")
            try await waitUntil(timeout: .seconds(90), message: "ready once the queues may be read, without a restart") {
                await OperationsHTTP.get(run.httpPort, "/health/ready")?.status == 200
            }
            run.process.kill(signal: SIGTERM)
            #expect(try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(60)) } == 0)
        }
        await harness.tearDown()
    }
}
