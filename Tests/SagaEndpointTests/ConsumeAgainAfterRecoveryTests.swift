import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Testing

/// An input queue lost with its vhost while the connection is down: the endpoint consumes it again as soon
/// as the connection and the queue are back, not after the delay its failed attempts built up meanwhile.
@Suite("Consuming an input queue again after a recovery", .timeLimit(.minutes(3)))
struct ConsumeAgainAfterRecoveryTests {
    // Found by an operations review: each attempt while the connection was down counted, so the delay was
    // at 30 s when an operator created the vhost again, and the endpoint stayed not ready (quoting the
    // refusal that was no longer true) for up to 30 s more, after logging "ready again".
    @Test("the vhost deleted for a while and created again: consuming again within seconds of its return")
    func consumedSoonAfterTheVhostReturns() async throws {
        let harness = try await EndpointHarness.make()
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                            queues: ["transfers"], database: "sagas", logger: log.logger(label: "endpoint"))
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }

        try await runOnThread { [vhost = harness.vhost] in try TestBroker.deleteVhost(vhost) }
        // Long enough for the attempts' delay to pass 16 s.
        try await Task.sleep(for: .seconds(35))
        #expect(!endpoint.isReady)
        // An operator creates it again; the harness's connection declares the queues again when it recovers.
        try await runOnThread { [vhost = harness.vhost] in try VhostBatcher.create([vhost]) }
        let back = ContinuousClock.now
        try await log.waitUntil(timeout: .seconds(60), message: "ready again") { endpoint.isReady }
        #expect(ContinuousClock.now - back < .seconds(12), "ready \(ContinuousClock.now - back) after the vhost came back")
        try await harness.send(TransferRequested(transferId: "t-back", fromAccount: "a", toAccount: "b", amount: 1),
                               to: "transfers")
        let debits = try await harness.receive(from: "bank", count: 1, timeout: .seconds(20))
        #expect(debits.count == 1)
        await harness.stop(running)
        await harness.tearDown()
    }

    // Found by the same review: the log said "ready again: broker connections serving" as soon as the
    // connections were back, while the probe still answered 503 because an input queue was not consumed.
    @Test("connections back while an input queue is still missing: the log does not call it ready")
    func noReadyAgainWhileAQueueIsMissing() async throws {
        let harness = try await EndpointHarness.make()
        let log = LogCapture()
        let name = TestBroker.uniqueName("consume-again")
        let endpoint = harness.makeEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                            queues: ["transfers"], database: "sagas", logger: log.logger(label: "endpoint"),
                                            configure: { $0.connectionName = name })
        let running = Task { try await endpoint.run() }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }
        _ = try await harness.connection.deleteQueue("transfers")
        try await log.waitUntil(timeout: .seconds(30), message: "not ready without its queue") { !endpoint.isReady }
        let lossesBefore = log.log.entries.count
        _ = try await runOnThread {
            for suffix in ["-consume", "-publish"] { _ = try TestBroker.closeConnections(named: name + suffix) }
        }
        try await log.waitUntil(timeout: .seconds(30), message: "the connections back") {
            log.log.entries.dropFirst(lossesBefore).contains { $0.message.hasPrefix("broker connections serving again") }
        }
        #expect(!endpoint.isReady)
        #expect(!log.log.entries.contains { $0.message == "ready again: broker connections serving" }, "\(log.tail(40))")
        try await harness.connection.declareQueue(QueueDeclaration(name: "transfers"))
        try await log.waitUntil(timeout: .seconds(60), message: "ready once the queue is back") { endpoint.isReady }
        await harness.stop(running)
        await harness.tearDown()
    }
}
