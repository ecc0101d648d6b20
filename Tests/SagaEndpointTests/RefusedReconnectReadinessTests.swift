import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Testing

/// A connection lost for good as far as the broker goes: its vhost deleted, so every reconnect is refused
/// (530) until an operator creates it again. The endpoint keeps trying, but its readiness reason must say
/// that the broker refuses it, not only that it is recovering.
@Suite("Readiness while the broker refuses to reconnect", .timeLimit(.minutes(2)))
struct RefusedReconnectReadinessTests {
    // Failed before: the reason was "broker connection lost (…); recovering", as for a broker restarting.
    @Test("the vhost deleted under a running endpoint: not ready, naming the refusal and that an operator must act")
    func deletedVhost() async throws {
        let harness = try await EndpointHarness.make()
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                            queues: ["transfers"], database: "sagas", logger: log.logger(label: "endpoint"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        try await runOnThread { [vhost = harness.vhost] in try TestBroker.deleteVhost(vhost) }
        try await log.waitUntil(timeout: .seconds(30), message: "the refusal in the readiness reason") {
            endpoint.notReadyReason?.contains("refuses to reconnect") == true
        }
        let reason = try #require(endpoint.notReadyReason)
        #expect(reason.contains("authenticationFailed"), "\(reason)")
        #expect(reason.contains(harness.vhost), "\(reason)")
        #expect(reason.contains("an operator must fix"), "\(reason)")
        await harness.stop(running)
        await harness.tearDown()
    }
}
