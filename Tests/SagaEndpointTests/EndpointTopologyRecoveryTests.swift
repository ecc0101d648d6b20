// An endpoint given its topology declares it again whenever a broker connection recovers, so it heals by
// itself when the broker lost its definitions; what the broker refuses then keeps it not ready, naming
// the declaration, without a reconnect loop and without stopping the work. Before, the topology was
// declared once, at start, on a connection of its own: after a vhost was deleted and created again the
// endpoint stayed not ready (its input queue missing) until an operator declared the topology.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

@Suite("The endpoint's topology after a connection recovery", .timeLimit(.minutes(4)))
struct EndpointTopologyRecoveryTests {
    /// The reference app's topology as `topology/transfers.json` has it, plus a queue `audit` that nobody
    /// consumes (for a test to change behind the endpoint's back).
    static let topology = EndpointTopology(
        exchanges: [MoneyTransferApp.transferEventsExchange, MoneyTransferApp.payoutEventsExchange]
            .map { ExchangeDeclaration(name: $0, kind: .topic) },
        queues: ["transfers", "payouts", "bank", "transfers.error", "payouts.error", "bank.error", "audit"]
            .map { QueueDeclaration(name: $0) },
        bindings: MoneyTransferApp.payoutBindingKeys.map {
            BindingDeclaration(source: MoneyTransferApp.transferEventsExchange, destination: "payouts", routingKey: $0)
        })

    @Test("a vhost deleted and created again: the endpoint declares its topology again and serves without an operator")
    func vhostRecreated() async throws {
        try await withEndpoint { vhost, endpoint, log, _ in
            try await runOnThread { try TestBroker.deleteVhost(vhost.name) }
            try await log.waitUntil(timeout: .seconds(20), message: "not ready while the vhost is gone") { !endpoint.isReady }
            try await runOnThread { try VhostBatcher.create([vhost.name]) }
            try await log.waitUntil(timeout: .seconds(60), message: "ready again without an operator") { endpoint.isReady }

            // Checked on a connection that declares nothing itself.
            let check = try await AMQPConnection.connect(url: vhost.url, connectionName: "check", recovery: .disabled,
                                                         logger: Self.quiet)
            for exchange in Self.topology.exchanges { try await check.checkExchange(exchange.name) }
            for queue in Self.topology.queues { _ = try await check.checkQueue(queue.name) }
            // The binding is back: an event routed by it is not returned (mandatory).
            try await check.publish(PublishRequest(
                exchange: MoneyTransferApp.transferEventsExchange, routingKey: TransferCompleted.messageType,
                message: AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(messageId: "probe"))))
            #expect(try await check.checkQueue("payouts").messageCount >= 1)
            // Work goes on: a request becomes a command for the bank.
            try await Self.request(on: check, id: "after-reset")
            try await log.waitUntil(timeout: .seconds(30), message: "the request handled after the reset") {
                try await check.checkQueue(MoneyTransferApp.bankQueue).messageCount == 1
            }
            await check.close()
        }
    }

    @Test("a re-declaration the broker refuses: not ready naming it, logged, no reconnect loop, messages still handled, ready once fixed")
    func refusedRedeclaration() async throws {
        try await withEndpoint { vhost, endpoint, log, metrics in
            // Someone declares `audit` again with other arguments; the endpoint does not notice yet.
            let other = try await AMQPConnection.connect(url: vhost.url, connectionName: "other", recovery: .disabled,
                                                         logger: Self.quiet)
            try await other.deleteQueue("audit")
            try await other.declareQueue(QueueDeclaration(name: "audit", arguments: ["x-max-length": .int64(5)]))
            await other.close()

            try await runOnThread { try TestBroker.closeConnections(vhost: vhost.name) }
            try await log.waitUntil(timeout: .seconds(30), message: "not ready naming the refused queue") {
                endpoint.notReadyReason?.contains("queue 'audit'") == true
            }
            let reason = try #require(endpoint.notReadyReason)
            #expect(reason.contains("406") && reason.contains("x-max-length"), "\(reason)")
            #expect(log.tail(500).contains("amqp.declaration=queue 'audit'"), "\(log.tail())")
            #expect(log.tail(500).contains("PRECONDITION_FAILED"), "\(log.tail())")
            #expect(try metrics.expectGauge("saga_topology_undeclared").lastValue == 1)

            // Nothing is lost or stuck meanwhile: both connections came back once, and the work goes on.
            let check = try await AMQPConnection.connect(url: vhost.url, connectionName: "check", recovery: .disabled,
                                                         logger: Self.quiet)
            try await Self.request(on: check, id: "while-refused")
            try await log.waitUntil(timeout: .seconds(30), message: "the request handled while not ready") {
                try await check.checkQueue(MoneyTransferApp.bankQueue).messageCount == 1
            }
            try await Task.sleep(for: .seconds(3))
            #expect(try metrics.expectCounter("saga_connection_recoveries_total").totalValue == 2)
            #expect(!endpoint.isReady)

            // The operator removes the odd queue: the retry declares it as the topology says.
            try await check.deleteQueue("audit")
            try await log.waitUntil(timeout: .seconds(45), message: "ready again once the broker accepts it") {
                endpoint.isReady
            }
            #expect(try metrics.expectGauge("saga_topology_undeclared").lastValue == 0)
            try await check.declareQueue(QueueDeclaration(name: "audit"))  // the same settings: a no-op
            await check.close()
        }
    }

    // Failed before: the health watcher merged the two connections' refusals by their description, which
    // leaves a binding's arguments out; two bindings that differ only in them (a headers exchange) counted
    // as one, and the readiness reason named one of them.
    @Test("two refused bindings that differ only in their arguments are counted and named apart")
    func refusedBindingsDifferingInArguments() async throws {
        var topology = Self.topology
        topology.exchanges.append(ExchangeDeclaration(name: "audit.headers", kind: "headers"))
        topology.bindings += ["a", "b"].map {
            BindingDeclaration(source: "audit.headers", destination: "audit", arguments: ["kind": .string($0)])
        }
        try await withEndpoint(topology: topology) { vhost, endpoint, log, metrics in
            // guest may no longer write to `audit`: binding it (write on the queue) is refused with 403.
            try await runOnThread {
                try TestBroker.rabbitmqctl(["set_permissions", "-p", vhost.name, "guest", ".*", "^(?!audit$).*", ".*"])
                try TestBroker.closeConnections(vhost: vhost.name)
            }
            try await log.waitUntil(timeout: .seconds(30), message: "not ready naming the refused bindings") {
                endpoint.notReadyReason?.contains("'audit.headers'") == true
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(try metrics.expectGauge("saga_topology_undeclared").lastValue == 2)
            let reason = try #require(endpoint.notReadyReason)
            #expect(reason.contains("kind") && reason.contains("a") && reason.contains("b"), "\(reason)")
            #expect(reason.components(separatedBy: "to exchange 'audit.headers'").count == 3, "\(reason)")
        }
    }

    @Test("an input queue deleted while the connection stays up is not declared again")
    func inputQueueDeletedWhileConnected() async throws {
        try await withEndpoint { vhost, endpoint, log, _ in
            let other = try await AMQPConnection.connect(url: vhost.url, connectionName: "other", recovery: .disabled,
                                                         logger: Self.quiet)
            try await other.deleteQueue("transfers")
            try await log.waitUntil(timeout: .seconds(10), message: "not consuming the deleted queue") {
                endpoint.notReadyReason?.contains("not consuming transfers") == true
            }
            try await Task.sleep(for: .seconds(3))
            let missing = await #expect(throws: AMQPError.self) { _ = try await other.checkQueue("transfers") }
            #expect(missing?.replyCode == 404)
            await other.close()
        }
    }

    // Failed before: the topology was declared before the endpoint declared its missing input queues, so
    // on a fresh broker a binding to the endpoint's own input queue (how it subscribes to another
    // endpoint's events, with the queue left out of `queues` since the endpoint declares it) was refused
    // with 404 NOT_FOUND and the endpoint stopped at start.
    @Test("a binding to the endpoint's own input queue, which the topology does not list, is declared at start and after a recovery")
    func subscriptionToOwnInputQueue() async throws {
        let topology = EndpointTopology(
            exchanges: [ExchangeDeclaration(name: "requests.events", kind: .topic)],
            queues: [QueueDeclaration(name: MoneyTransferApp.bankQueue)],
            bindings: [BindingDeclaration(source: "requests.events", destination: "transfers",
                                          routingKey: TransferRequested.messageType)])
        try await withEndpoint(topology: topology) { vhost, endpoint, log, _ in
            let check = try await AMQPConnection.connect(url: vhost.url, connectionName: "check", recovery: .disabled,
                                                         logger: Self.quiet)
            try await Self.request(on: check, id: "via-exchange", exchange: "requests.events")
            try await log.waitUntil(timeout: .seconds(30), message: "the event reached the saga through the binding") {
                try await check.checkQueue(MoneyTransferApp.bankQueue).messageCount == 1
            }
            await check.close()

            // The broker loses its definitions: each connection declares the input queue again before the
            // binding, so nothing is left refused.
            try await runOnThread { try TestBroker.deleteVhost(vhost.name) }
            try await log.waitUntil(timeout: .seconds(20), message: "not ready while the vhost is gone") { !endpoint.isReady }
            try await runOnThread { try VhostBatcher.create([vhost.name]) }
            try await log.waitUntil(timeout: .seconds(60), message: "ready again without an operator") { endpoint.isReady }
            #expect(!log.tail(2000).contains("NOT_FOUND"), "\(log.tail())")
            let again = try await AMQPConnection.connect(url: vhost.url, connectionName: "check", recovery: .disabled,
                                                         logger: Self.quiet)
            try await Self.request(on: again, id: "via-exchange-after-reset", exchange: "requests.events")
            try await log.waitUntil(timeout: .seconds(30), message: "the binding is back after the reset") {
                try await again.checkQueue(MoneyTransferApp.bankQueue).messageCount == 1
            }
            await again.close()
        }
    }

    static let quiet: Logger = {
        var logger = Logger(label: "check")
        logger.logLevel = .error
        return logger
    }()

    /// Sends one TransferRequested to `transfers`, or to `exchange` with its type as the routing key.
    static func request(on connection: AMQPConnection, id: String, exchange: String = "") async throws {
        let body = try MessageCoding.encode(TransferRequested(transferId: id, fromAccount: "a", toAccount: "b", amount: 10))
        try await connection.publish(PublishRequest(
            exchange: exchange, routingKey: exchange.isEmpty ? "transfers" : TransferRequested.messageType,
            message: AMQPMessage(body: body, properties: BasicProperties(
                contentType: "application/json", deliveryMode: .persistent, messageId: id,
                type: TransferRequested.messageType))))
    }

    /// Runs `body` with an endpoint of the transfer sagas (input queue `transfers`, `topology` configured)
    /// that is ready, in a vhost of its own with nothing declared by anyone else; stops it and deletes the
    /// vhost afterwards.
    private func withEndpoint(
        topology: EndpointTopology = Self.topology,
        _ body: ((name: String, url: String), SagaEndpoint, LogCapture, TestMetrics) async throws -> Void
    ) async throws {
        let vhost = try await VhostBatcher.shared.make()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("topology-recovery-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = EndpointConfiguration(amqpURL: vhost.url, inputQueues: ["transfers"],
                                                  databasePath: directory.appendingPathComponent("s.sqlite").path)
        configuration.topology = topology
        let log = LogCapture()
        let metrics = TestMetrics()
        let endpoint = SagaEndpoint(configuration: configuration,
                                    registry: MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                    logger: log.logger(label: "endpoint"), metricsFactory: metrics)
        let running = Task { try await endpoint.run() }
        func cleanUp() async {
            running.cancel()
            _ = await running.result
            _ = try? await runOnThread { try TestBroker.deleteVhost(vhost.name) }
            try? FileManager.default.removeItem(at: directory)
        }
        do {
            try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }
            try await body(vhost, endpoint, log, metrics)
        } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }
}
