import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaStore
import Sagas
import Synchronization
import Testing

/// The wire contract as an outside client sees it: the test plays the bank itself over AMQP (no code of
/// ours on that side), replies at full speed and injects duplicates, and checks what the endpoint emits.
@Suite("Wire contract with an outside bank", .timeLimit(.minutes(6)))
struct OutsideBankContractTests {
    static let transfers = 200

    @Test("commands follow the contract; duplicated replies change nothing; every transfer ends exactly once")
    func contractHoldsWithDuplicates() async throws {
        let harness = try await EndpointHarness.make()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers", "payouts"], database: "sagas")
        let violations = Mutex<[String]>([])
        func violation(_ text: String) { violations.withLock { $0.append(text) } }

        // The bank: every command is checked against the contract and answered twice with the same
        // message id (a redelivered reply), and every third one also with a new id (a late duplicate).
        let bank = try await harness.connection.consume(queue: "bank", prefetch: 500)
        let banking = Task { [connection = harness.connection] in
            for try await delivery in bank.deliveries {
                let p = delivery.properties
                guard p.contentType == "application/json", p.deliveryMode == .persistent, p.messageId != nil,
                      p.replyTo == "transfers", let correlationId = p.correlationId else {
                    violation("command without the contract's properties: \(p)")
                    try await connection.ack(delivery.tag)
                    continue
                }
                let reply: (String, Data)
                switch p.type {
                case DebitAccount.messageType:
                    let command = try delivery.decode(DebitAccount.self)
                    reply = command.account.hasPrefix("poor-")
                        ? (DebitRejected.messageType, try MessageCoding.encode(DebitRejected(transferId: command.transferId, account: command.account, reason: "InsufficientFunds")))
                        : (AccountDebited.messageType, try MessageCoding.encode(AccountDebited(transferId: command.transferId, account: command.account, amount: command.amount, fee: 25)))
                case CreditAccount.messageType:
                    let command = try delivery.decode(CreditAccount.self)
                    reply = command.account.hasPrefix("closed-")
                        ? (CreditRejected.messageType, try MessageCoding.encode(CreditRejected(transferId: command.transferId, account: command.account, reason: "AccountClosed")))
                        : (AccountCredited.messageType, try MessageCoding.encode(AccountCredited(transferId: command.transferId, account: command.account, amount: command.amount, fee: 15)))
                case RefundAccount.messageType:
                    let command = try delivery.decode(RefundAccount.self)
                    reply = (AccountRefunded.messageType, try MessageCoding.encode(AccountRefunded(transferId: command.transferId, account: command.account, amount: command.amount, fee: 10)))
                default:
                    violation("unexpected command type \(p.type ?? "nil")")
                    try await connection.ack(delivery.tag)
                    continue
                }
                let replyId = "reply-\(p.messageId!)"
                var ids = [replyId, replyId]
                if Int.random(in: 0..<3) == 0 { ids.append("late-\(UUID().uuidString)") }
                let requests = ids.map { id in
                    PublishRequest.toQueue("transfers", AMQPMessage(body: reply.1, properties: BasicProperties(
                        contentType: "application/json", deliveryMode: .persistent, correlationId: correlationId,
                        messageId: id, type: reply.0)))
                }
                guard await connection.publish(requests).allSatisfy(\.isConfirmed) else {
                    violation("reply not confirmed")
                    continue
                }
                try await connection.ack(delivery.tag)
            }
        }

        var expected: [String: (type: String, refunded: Int, feesLost: Int, fees: Int)] = [:]
        for index in 0..<Self.transfers {
            let id = "c-\(index)"
            let (from, to) = switch index % 4 {
            case 0: ("poor-\(index)", "to-\(index)")
            case 1: ("from-\(index)", "closed-\(index)")
            default: ("from-\(index)", "to-\(index)")
            }
            switch index % 4 {
            case 0: expected[id] = (TransferFailed.messageType, 0, 0, 0)
            case 1: expected[id] = (TransferFailed.messageType, 100, 25 + 10, 0)
            default: expected[id] = (TransferCompleted.messageType, 0, 0, 25 + 15)
            }
            let request = TransferRequested(transferId: id, fromAccount: from, toAccount: to, amount: 100)
            try await harness.send(request, to: "transfers", messageId: "req-\(index)")
            if index % 10 == 0 { try await harness.send(request, to: "transfers", messageId: "req-\(index)") }
        }

        let events = try await harness.receive(from: harness.eventsQueue, count: Self.transfers, timeout: .seconds(90))
        // Late duplicates, if any, would arrive now.
        let extra = try await harness.receive(from: harness.eventsQueue, count: 1, timeout: .seconds(2))
        banking.cancel()
        try? await bank.cancel()

        #expect(violations.withLock { $0 }.isEmpty, "\(violations.withLock { $0 }.prefix(5))")
        #expect(extra.isEmpty, "a transfer ended twice: \(extra.map { $0.properties.type ?? "" })")
        var ended: [String: Int] = [:]
        for event in events {
            #expect(event.properties.contentType == "application/json")
            #expect(event.properties.deliveryMode == .persistent)
            #expect(event.properties.messageId != nil)
            switch event.properties.type {
            case TransferCompleted.messageType:
                let completed = try event.decode(TransferCompleted.self)
                ended[completed.transferId, default: 0] += 1
                #expect(expected[completed.transferId]?.type == TransferCompleted.messageType)
                #expect(completed.fees == expected[completed.transferId]?.fees)
                #expect(completed.amount == 100)
            case TransferFailed.messageType:
                let failed = try event.decode(TransferFailed.self)
                ended[failed.transferId, default: 0] += 1
                #expect(expected[failed.transferId]?.type == TransferFailed.messageType)
                #expect(failed.refunded == expected[failed.transferId]?.refunded)
                #expect(failed.feesLost == expected[failed.transferId]?.feesLost)
            default:
                Issue.record("unexpected event \(event.properties.type ?? "nil")")
            }
        }
        #expect(ended.count == Self.transfers)
        #expect(ended.values.allSatisfy { $0 == 1 })
        sagas.cancel()
        _ = await sagas.result
        let store = try SagaStore(path: harness.databasePath("sagas"))
        #expect(try store.listSagas().isEmpty, "saga state left behind")
        await harness.tearDown()
    }
}
