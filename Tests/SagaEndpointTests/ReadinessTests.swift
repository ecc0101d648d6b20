import BrokerTestSupport
import MoneyTransfer
import Testing

/// Ready means consuming. Failed before: the endpoint raised its readiness once its queues were declared,
/// before it consumed them, so /health/ready said 200 while no consumer existed yet; a fresh-clone CI run
/// caught it through InputQueueLostTests, which deleted a queue in that window and saw the endpoint fail.
@Suite("Readiness", .timeLimit(.minutes(2)))
struct ReadinessTests {
    @Test("the endpoint is ready only once every input queue has its consumer")
    func readyMeansConsuming() async throws {
        let harness = try await EndpointHarness.make()
        // Many queues: opening their consumers one after the other takes long enough to be seen.
        let queues = (1...40).map { "ready-\($0)" }
        for queue in queues { try await harness.declareQueue(queue) }
        let endpoint = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                            queues: queues, database: "ready")
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), poll: .milliseconds(1), message: "ready") { endpoint.isReady }
        var unconsumed: [String] = []
        for queue in queues where try await harness.connection.checkQueue(queue).consumerCount == 0 {
            unconsumed.append(queue)
        }
        #expect(unconsumed.isEmpty, "ready, but not consuming \(unconsumed.count) queues: \(unconsumed.prefix(5))")
        await harness.stop(running)
        await harness.tearDown()
    }
}
