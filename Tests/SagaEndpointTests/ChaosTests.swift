import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaStore
import Sagas
import Synchronization
import Testing

/// The worst day, in miniature: the endpoint is SIGKILLed every 1–2 s, its connections are closed by
/// the broker once, and the broker itself restarts once, while 2,000 transfers (with duplicates and a few
/// malformed messages) flow through the saga and a simulated bank. Nothing may be lost or done twice.
@Suite("Chaos", .serialized, .timeLimit(.minutes(6)))
struct ChaosTests {
    static let transfers = 2_000
    static let malformed = 5

    @Test("kills, forced closes and a broker restart: every transfer ends exactly once, each bank step once")
    func endpointSurvivesTheWorstDay() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(name: "chaos-\(UInt16.random(in: 1000...9999))") }
        defer { node.shutdown() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chaos-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let driver = try await AMQPConnection.connect(url: node.url, connectionName: "chaos-driver")
        defer { Task { await driver.close() } }
        try await declareTopology(driver)
        let events = EventLog()
        let observer = try await driver.consume(queue: "chaos.events", prefetch: 1000)
        let collecting = Task {
            while !Task.isCancelled {
                do {
                    for try await delivery in observer.deliveries {
                        events.record(delivery)
                        try? await driver.ack(delivery.tag)
                    }
                    return
                } catch { try? await Task.sleep(for: .milliseconds(100)) }
            }
        }
        defer { collecting.cancel() }

        func fixture(_ app: String, _ database: String) throws -> ChildProcess {
            try ChildProcess(executable: EndpointHarness.fixturePath, arguments: [
                "--amqp-url", node.url, "--database", directory.appendingPathComponent(database).path, "--app", app,
                "--name", "chaos-\(app)", "--bank-timeout", "3"], environment: ["LOG_LEVEL": "warning"])
        }
        let bank = try fixture("bank", "bank.sqlite")
        var endpoint = try fixture("transfer", "sagas.sqlite")

        // Requests: ~10% to closed accounts (refund), ~10% from underfunded ones (debit rejected), 5% sent twice.
        var expected: [String: String] = [:]
        var requests: [PublishRequest] = []
        for index in 0..<Self.transfers {
            let id = "chaos-\(index)"
            let (from, to, outcome) = switch index % 10 {
            case 0: ("acct-\(index)", "closed-\(index)", TransferFailed.messageType)
            case 1: ("poor-\(index)", "acct-\(index)", TransferFailed.messageType)
            default: ("acct-\(index)", "dest-\(index)", TransferCompleted.messageType)
            }
            expected[id] = outcome
            let request = try request(TransferRequested(transferId: id, fromAccount: from, toAccount: to, amount: 100 + index),
                                      messageId: "request-\(index)")
            requests.append(request)
            if index % 20 == 7 { requests.append(request) }
        }
        for index in 0..<Self.malformed {
            requests.insert(.toQueue("transfers", AMQPMessage(body: Data("{not json".utf8), properties: BasicProperties(
                contentType: "application/json", deliveryMode: .persistent, messageId: "malformed-\(index)",
                type: "TransferRequested"))), at: index * 300)
        }
        let publishing = Task { try await publishAll(requests, on: driver) }

        // Chaos, on a fixed schedule while the traffic flows (publishing is paced over ~15 s): SIGKILL the
        // endpoint every 1-2 s, close its connections once, restart the broker once.
        enum Step { case kill, closeConnections, restartBroker }
        let schedule: [Step] = [.kill, .kill, .closeConnections, .kill, .restartBroker, .kill, .kill, .kill]
        var kills = 0
        for step in schedule {
            try await Task.sleep(for: .milliseconds(Int.random(in: 1000...2000)))
            switch step {
            case .kill:
                endpoint.kill(signal: SIGKILL)
                _ = try? endpoint.waitUntilExit(timeout: .seconds(10))
                kills += 1
                endpoint = try fixture("transfer", "sagas.sqlite")
            case .closeConnections:
                _ = try? await runOnThread { try node.rabbitmqctl(["close_all_connections", "chaos test"]) }
            case .restartBroker:
                try await runOnThread { try node.stop(); try node.start() }
            }
        }
        try await publishing.value
        try await waitUntil(timeout: .seconds(150), message: "every transfer ends") { events.terminalCount >= Self.transfers }
        try await Task.sleep(for: .seconds(2))  // late duplicates, if any, arrive now
        endpoint.kill(signal: SIGTERM)
        bank.kill(signal: SIGTERM)
        _ = try? endpoint.waitUntilExit(timeout: .seconds(20))
        _ = try? bank.waitUntilExit(timeout: .seconds(20))

        #expect(kills == 6)
        // Exactly one distinct terminal event per transfer, of the expected kind.
        let terminal = events.terminalByTransfer()
        #expect(terminal.count == Self.transfers)
        let wrong = expected.filter { id, type in terminal[id].map { $0.count != 1 || $0.first?.type != type } ?? true }
        #expect(wrong.isEmpty, "transfers without exactly one expected terminal event: \(wrong.keys.sorted().prefix(10))")
        // Each bank step happened once per transfer: one reply per (transfer, step) in the bank's outbox.
        let bankStore = try SQLiteConnection(path: directory.appendingPathComponent("bank.sqlite").path)
        let repeated = try bankStore.query("""
            SELECT correlation_id, message_type, COUNT(*) AS n FROM outbox GROUP BY correlation_id, message_type HAVING n > 1
            """)
        #expect(repeated.isEmpty, "bank steps done more than once: \(repeated.prefix(5))")
        // The error queue holds only the malformed messages (a copy may repeat with the same id: error
        // copies are at-least-once, like every publish before an ack).
        let errorIds = try await distinctMessageIds(in: "transfers.error", on: driver)
        #expect(errorIds == Set((0..<Self.malformed).map { "malformed-\($0)" }))
        // No saga state is left behind.
        let sagas = try SQLiteConnection(path: directory.appendingPathComponent("sagas.sqlite").path)
        #expect(try sagas.query("SELECT COUNT(*) FROM sagas").first?[0] == .integer(0))
    }

    private func distinctMessageIds(in queue: String, on connection: AMQPConnection) async throws -> Set<String> {
        let depth = try await connection.checkQueue(queue).messageCount
        guard depth > 0 else { return [] }
        let consumer = try await connection.consume(queue: queue, prefetch: 1000)
        var ids = Set<String>()
        var seen = 0
        for try await delivery in consumer.deliveries {
            ids.insert(delivery.properties.messageId ?? "")
            try await connection.ack(delivery.tag)
            seen += 1
            if seen >= depth { break }
        }
        try await consumer.cancel()
        return ids
    }

    private func declareTopology(_ connection: AMQPConnection) async throws {
        for exchange in ["transfers.events", "payouts.events"] {
            try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .topic))
        }
        for queue in ["transfers", "payouts", "bank", "transfers.error", "payouts.error", "bank.error", "chaos.events"] {
            try await connection.declareQueue(QueueDeclaration(name: queue))
        }
        try await connection.bind(BindingDeclaration(source: "transfers.events", destination: "chaos.events", routingKey: "#"))
        for key in ["TransferCompleted", "TransferFailed"] {
            try await connection.bind(BindingDeclaration(source: "transfers.events", destination: "payouts", routingKey: key))
        }
    }

    private func request<M: Message>(_ message: M, messageId: String) throws -> PublishRequest {
        .toQueue("transfers", AMQPMessage(body: try MessageCoding.encode(message), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: messageId, type: M.messageType)))
    }

    /// Publishes in chunks, retrying what the broker did not confirm (it restarts meanwhile).
    private func publishAll(_ requests: [PublishRequest], on connection: AMQPConnection) async throws {
        var pending = requests[...]
        while !pending.isEmpty {
            let chunk = Array(pending.prefix(200))
            let outcomes = await connection.publish(chunk)
            if outcomes.allSatisfy(\.isConfirmed) {
                pending = pending.dropFirst(chunk.count)
                try await Task.sleep(for: .milliseconds(1500))  // keep traffic flowing through the chaos
            } else {
                try? await connection.waitUntilConnected(timeout: .seconds(60))
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// Terminal events seen by the observer, deduplicated by message id (at-least-once delivery may repeat).
private final class EventLog: Sendable {
    struct Event: Hashable { var messageId: String; var type: String }
    private let events = Mutex<[String: Set<Event>]>([:])

    func record(_ delivery: AMQPDelivery) {
        guard let type = delivery.properties.type, type == "TransferCompleted" || type == "TransferFailed",
              let body = try? JSONSerialization.jsonObject(with: delivery.message.body) as? [String: Any],
              let transferId = body["transferId"] as? String else { return }
        let event = Event(messageId: delivery.properties.messageId ?? "", type: type)
        events.withLock { _ = $0[transferId, default: []].insert(event) }
    }

    var terminalCount: Int { events.withLock { $0.count } }
    func terminalByTransfer() -> [String: Set<Event>] { events.withLock { $0 } }
}
