// `saga-endpoint run` declares the topology files again whenever one of its connections recovers (with
// `--declare-topology`, the default), and `/health/ready` names what the broker refuses. Failed before:
// the files were declared once, at start, on a connection of their own, so after the vhost was deleted and
// created again the endpoint stayed not ready (its input queues missing) until an operator ran
// `saga-endpoint topology declare` or restarted it.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MoneyTransfer
import Testing

@Suite("saga-endpoint run: the topology after a connection recovery", .timeLimit(.minutes(5)))
struct CLITopologyRecoveryTests {
    static let topologyDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("topology").path

    static let quiet: Logger = {
        var logger = Logger(label: "check")
        logger.logLevel = .error
        return logger
    }()

    @Test("after the vhost is deleted and created again: ready again with the topology declared (and with --no-declare-topology, not)",
          arguments: [true, false])
    func vhostRecreated(declareTopology: Bool) async throws {
        try await withRun(declareTopology ? [] : ["--no-declare-topology"]) { vhost, run in
            func ready() async -> Int? { await OperationsHTTP.get(run.httpPort, "/health/ready")?.status }
            try await waitUntil(timeout: .seconds(60), message: "ready after start") { await ready() == 200 }

            try await runOnThread { try TestBroker.deleteVhost(vhost.name) }
            try await waitUntil(timeout: .seconds(20), message: "not ready while the vhost is gone") { await ready() == 503 }
            try await runOnThread { try VhostBatcher.create([vhost.name]) }
            try await waitUntil(timeout: .seconds(60), message: "ready again: \(run.process.errorOutput().suffix(2000))") {
                await ready() == 200
            }

            let check = try await AMQPConnection.connect(url: vhost.url, connectionName: "check", recovery: .disabled,
                                                         logger: Self.quiet)
            // The endpoint's own input and error queues come back either way (it declared them itself at start
            // when they were missing, as it always did).
            for queue in ["transfers", "payouts", "transfers.error", "payouts.error"] { _ = try await check.checkQueue(queue) }
            if declareTopology {
                for exchange in [MoneyTransferApp.transferEventsExchange, MoneyTransferApp.payoutEventsExchange] {
                    try await check.checkExchange(exchange)
                }
                for queue in ["bank", "bank.error"] { _ = try await check.checkQueue(queue) }
                // The binding is back: a mandatory publish routed by it is confirmed, not returned.
                try await check.publish(PublishRequest(
                    exchange: MoneyTransferApp.transferEventsExchange, routingKey: TransferCompleted.messageType,
                    message: AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(messageId: "probe"))))
            } else {
                let exchange = await #expect(throws: AMQPError.self) {
                    try await check.checkExchange(MoneyTransferApp.transferEventsExchange)
                }
                #expect(exchange?.replyCode == 404)
                let queue = await #expect(throws: AMQPError.self) { _ = try await check.checkQueue("bank") }
                #expect(queue?.replyCode == 404)
            }
            await check.close()
            run.process.kill(signal: SIGTERM)
            #expect(try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(15)) } == 0)
        }
    }

    @Test("a re-declaration the broker refuses: /health/ready 503 naming it, logged, counted; 200 once it is fixed")
    func refusedRedeclaration() async throws {
        try await withRun([]) { vhost, run in
            func ready() async -> (status: Int, body: String)? { await OperationsHTTP.get(run.httpPort, "/health/ready") }
            try await waitUntil(timeout: .seconds(60), message: "ready after start") { await ready()?.status == 200 }

            // `bank` (which `run` does not consume) is declared again by someone with other arguments.
            let check = try await AMQPConnection.connect(url: vhost.url, connectionName: "check", recovery: .disabled,
                                                         logger: Self.quiet)
            try await check.deleteQueue("bank")
            try await check.declareQueue(QueueDeclaration(name: "bank", arguments: ["x-max-length": .int64(5)]))
            await check.close()
            try await runOnThread { try TestBroker.closeConnections(vhost: vhost.name) }

            try await waitUntil(timeout: .seconds(30), message: "503 naming the queue: \(run.process.errorOutput().suffix(2000))") {
                guard let answer = await ready() else { return false }
                return answer.status == 503 && answer.body.contains("queue 'bank'")
            }
            let body = await ready()?.body ?? ""
            #expect(body.contains("PRECONDITION_FAILED") && body.contains("x-max-length"), "\(body)")
            let log = run.process.errorOutput()
            #expect(log.contains("amqp.declaration=queue 'bank'") && log.contains("PRECONDITION_FAILED"), "\(log.suffix(2000))")
            #expect(await OperationsHTTP.metrics(run.httpPort)["saga_topology_undeclared"] == 1)
            try await Task.sleep(for: .seconds(2))
            #expect(await OperationsHTTP.metrics(run.httpPort)["saga_connection_recoveries_total"] == 2, "no reconnect loop")

            let fixer = try await AMQPConnection.connect(url: vhost.url, connectionName: "fixer", recovery: .disabled,
                                                         logger: Self.quiet)
            try await fixer.deleteQueue("bank")
            await fixer.close()
            try await waitUntil(timeout: .seconds(45), message: "ready once the broker accepts it") { await ready()?.status == 200 }
            #expect(await OperationsHTTP.metrics(run.httpPort)["saga_topology_undeclared"] == 0)
            run.process.kill(signal: SIGTERM)
            #expect(try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(15)) } == 0)
        }
    }

    /// Runs `body` with `saga-endpoint run` (the repository's topology files, `arguments` added) in a vhost
    /// of its own; kills it and deletes the vhost afterwards.
    private func withRun(_ arguments: [String],
                         _ body: ((name: String, url: String), RunProcess) async throws -> Void) async throws {
        let vhost = try await VhostBatcher.shared.make()
        func cleanUp(_ run: RunProcess?) async {
            run?.cleanUp()
            _ = try? await runOnThread { try TestBroker.deleteVhost(vhost.name) }
        }
        var run: RunProcess?
        do {
            run = try RunProcess(url: vhost.url, label: "topology-recovery", logLevel: "notice",
                                 extraArguments: ["--topology-dir", Self.topologyDirectory] + arguments)
            try await body(vhost, run!)
        } catch {
            await cleanUp(run)
            throw error
        }
        await cleanUp(run)
    }
}
