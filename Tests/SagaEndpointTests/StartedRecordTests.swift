import BrokerTestSupport
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// The notice an endpoint logs once it consumes: what an operator reads to see what a process hosts.
@Suite("The endpoint started record", .timeLimit(.minutes(2)))
struct StartedRecordTests {
    // Found by an operations review: `saga-endpoint bank` logged "endpoint started … sagas=" and nothing
    // about the messages it handles: at `notice`, its only start record said it hosted nothing.
    @Test("names the message types of the stateless handlers beside the sagas")
    func namesStatelessHandlers() async throws {
        let harness = try await EndpointHarness.make()
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank",
                                            logger: log.logger(label: "bank"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "endpoint started") {
            log.log.entries.contains { $0.message == "endpoint started" }
        }
        let started = log.log.entries.first { $0.message == "endpoint started" }
        #expect(started?.metadata["handlers"] == "CreditAccount,DebitAccount,RefundAccount", "\(log.tail())")
        await harness.stop(running)
        await harness.tearDown()
    }
}
