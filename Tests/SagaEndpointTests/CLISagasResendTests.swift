import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaStore
import Sagas
import Testing

/// `sagas resend TRANSFER_ID`: a transfer whose bank command left queue `bank` unanswered is woken by
/// publishing that command again, under its message id, against the real broker.
@Suite("saga-endpoint sagas resend", .timeLimit(.minutes(4)))
struct CLISagasResendTests {
    func resend(_ id: String, database: String, url: String, extra: [String] = []) async throws -> CLIRun {
        let process = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: [
            "sagas", "resend", id, "--database", database, "--amqp-url", url, "--log-level", "warning"] + extra)
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
    }

    @Test("a purged DebitAccount is sent again as the saga sent it; the transfer completes once")
    func purgedCommandIsResent() async throws {
        let harness = try await EndpointHarness.make()
        // A long bank timeout: the saga itself sends nothing again during the test.
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                             queues: ["transfers"], database: "sagas")
        try await harness.send(TransferRequested(transferId: "lost-1", fromAccount: "alice", toAccount: "bob", amount: 70),
                               to: MoneyTransferApp.transfersQueue)
        // The saga's own command, taken off `bank` (lost, as a purge loses it) to compare with the resent one.
        let original = try #require(try await harness.receive(from: MoneyTransferApp.bankQueue, count: 1).first)
        _ = try await harness.connection.purgeQueue(MoneyTransferApp.bankQueue)
        #expect(try await harness.depth(MoneyTransferApp.bankQueue) == 0)

        // Twice: the bank handles the first copy and drops the second (one message id).
        let database = harness.databasePath("sagas")
        let first = try await resend("lost-1", database: database, url: harness.url)
        let second = try await resend("lost-1", database: database, url: harness.url)
        #expect(first.status == 0 && second.status == 0, "\(first) \(second)")
        let printed = try JSONSerialization.jsonObject(with: Data(first.output.utf8)) as? [String: Any]
        #expect(printed?["type"] as? String == DebitAccount.messageType, "\(first)")
        #expect(printed?["messageId"] as? String == original.properties.messageId, "\(first)")
        #expect(printed?["step"] as? String == "debiting" && printed?["queue"] as? String == "bank", "\(first)")

        let resent = try await harness.receive(from: MoneyTransferApp.bankQueue, count: 2)
        #expect(resent.count == 2)
        for copy in resent {
            #expect(copy.properties.type == original.properties.type)
            #expect(copy.properties.messageId == original.properties.messageId)
            #expect(copy.properties.correlationId == "lost-1" && copy.properties.correlationId == original.properties.correlationId)
            #expect(copy.properties.replyTo == MoneyTransferApp.transfersQueue && copy.properties.replyTo == original.properties.replyTo)
            #expect(copy.properties.deliveryMode == original.properties.deliveryMode)
            let body = try MessageCoding.decode(DebitAccount.self, from: copy.message.body, messageType: "")
            let expected = try MessageCoding.decode(DebitAccount.self, from: original.message.body, messageType: "")
            #expect(body.transferId == expected.transferId && body.account == expected.account && body.amount == expected.amount)
            // Put back for the bank, as they were published.
            try await harness.connection.publish(.toQueue(MoneyTransferApp.bankQueue, copy.message))
        }

        let bank = harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        let completed = try await harness.receive(from: harness.eventsQueue, count: 1, timeout: .seconds(60))
        #expect(completed.first?.properties.type == TransferCompleted.messageType)
        // Both copies handled (one dropped), the transfer gone from run's store: nothing more can follow.
        try await waitUntil(timeout: .seconds(30)) {
            let bankDepth = try await harness.depth(MoneyTransferApp.bankQueue)
            let transfersDepth = try await harness.depth(MoneyTransferApp.transfersQueue)
            return bankDepth == 0 && transfersDepth == 0
        }
        let after = try await resend("lost-1", database: database, url: harness.url)
        #expect(after.status == 1 && after.errorOutput.contains("no live TransferSaga with transfer id 'lost-1'"), "\(after)")
        let more = try await harness.receive(from: harness.eventsQueue, count: 1, timeout: .seconds(2))
        #expect(more.isEmpty, "\(more.map { $0.properties.type ?? "" })")
        await harness.stop(bank)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("refusals: no live transfer, no pending command, queue bank missing")
    func refusals() async throws {
        let harness = try await EndpointHarness.make()
        let database = harness.databasePath("sagas")
        let store = try SagaStore(path: database)
        _ = try store.claim(forEndpoint: MoneyTransferApp.transfersQueue)
        // A transfer that never sent a command (no message id the bank knows).
        let idle = #"{"transferId":"idle-1","fromAccount":"a","toAccount":"b","amount":5,"step":"debiting","#
            + #""commandMessageId":"","attempts":0,"stalled":false,"debitFee":0}"#
        try store.insertSaga(SagaRecord(sagaType: TransferSaga.sagaType, correlationId: "idle-1", state: Data(idle.utf8),
                                        createdAt: Date()))
        let waiting = #"{"transferId":"wait-1","fromAccount":"a","toAccount":"b","amount":5,"step":"crediting","#
            + #""commandMessageId":"cmd-wait-1","attempts":4,"stalled":true,"debitFee":1}"#
        try store.insertSaga(SagaRecord(sagaType: TransferSaga.sagaType, correlationId: "wait-1", state: Data(waiting.utf8),
                                        createdAt: Date()))
        store.close()

        let missing = try await resend("nope-1", database: database, url: harness.url)
        #expect(missing.status == 1 && missing.errorOutput.contains("no live TransferSaga with transfer id 'nope-1'"), "\(missing)")
        let idleRun = try await resend("idle-1", database: database, url: harness.url)
        #expect(idleRun.status == 1 && idleRun.errorOutput.contains("no pending bank command (step debiting, 0 attempts)"),
                "\(idleRun)")
        #expect(try await harness.depth(MoneyTransferApp.bankQueue) == 0)

        // Mandatory: without queue `bank` the command is reported unroutable, not dropped.
        _ = try await harness.connection.deleteQueue(MoneyTransferApp.bankQueue)
        let unroutable = try await resend("wait-1", database: database, url: harness.url)
        #expect(unroutable.status == 1 && unroutable.errorOutput.contains("CreditAccount to queue 'bank'")
                && unroutable.errorOutput.contains("topology declare"), "\(unroutable)")
        await harness.tearDown()
    }

    // As `transfer`: during a resource alarm the broker holds the confirm back, and the command would hang
    // for as long as the alarm lasts. Its own node: the alarm would stall every other test.
    @Test("a confirm held back by a resource alarm: exit 1 after --timeout, saying a repeat is safe")
    func resourceAlarmBoundsTheConfirm() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(name: "resend-alarm-\(UInt16.random(in: 1000...9999))") }
        defer { node.shutdown() }
        let admin = try await AMQPConnection.connect(url: node.url, connectionName: "resend-alarm-admin")
        try await admin.declareQueue(QueueDeclaration(name: MoneyTransferApp.bankQueue))
        let database = FileManager.default.temporaryDirectory.appendingPathComponent("resend-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) } }
        let store = try SagaStore(path: database)
        let waiting = #"{"transferId":"alarm-1","fromAccount":"a","toAccount":"b","amount":5,"step":"refunding","#
            + #""commandMessageId":"cmd-alarm-1","attempts":4,"stalled":true,"debitFee":1}"#
        try store.insertSaga(SagaRecord(sagaType: TransferSaga.sagaType, correlationId: "alarm-1", state: Data(waiting.utf8),
                                        createdAt: Date()))
        store.close()
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.0000001"]) }
        let run = try await resend("alarm-1", database: database, url: node.url, extra: ["--timeout", "3"])
        #expect(run.status == 1, "\(run)")
        #expect(run.errorOutput.contains("did not confirm RefundAccount cmd-alarm-1"), "\(run)")
        #expect(run.errorOutput.contains("blocks publishing") && run.errorOutput.contains("running the command again is safe"),
                "\(run)")
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.4"]) }
        await admin.close()
    }
}
