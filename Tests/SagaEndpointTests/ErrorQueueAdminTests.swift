import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

@Suite("Error queue: list, show, replay, purge", .timeLimit(.minutes(6)))
struct ErrorQueueAdminTests {
    private func park(_ harness: EndpointHarness, id: String, body: Data, type: String, reason: String) async throws {
        try await harness.sendRaw(body, properties: BasicProperties(
            contentType: "application/json",
            headers: ["x-original-queue": "transfers", "x-error-reason": .string(reason), "x-attempts": .int64(6),
                      "keep": "me"],
            deliveryMode: .persistent, messageId: id, type: type), to: "transfers.error")
    }

    @Test("list and show read the reason without removing; replay moves one message back with its id")
    func listShowReplay() async throws {
        let harness = try await EndpointHarness.make()
        let request = TransferRequested(transferId: "t-replay", fromAccount: "alice", toAccount: "bob", amount: 10)
        try await park(harness, id: "m-1", body: try MessageCoding.encode(request), type: "TransferRequested", reason: "boom")
        try await park(harness, id: "m-2", body: Data("{}".utf8), type: "TransferRequested", reason: "bad")
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")

        let listed = try await admin.list()
        #expect(listed.map(\.messageId) == ["m-1", "m-2"])
        #expect(listed.first?.reason == "boom")
        #expect(listed.first?.attempts == 6)
        // Browsing returns the messages to the queue (the count may lag: requeues travel another channel).
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        #expect(try await admin.show(messageId: "m-2")?.reason == "bad")

        #expect(try await admin.replay(messageId: "m-1"))
        #expect(try await admin.replay(messageId: "missing") == false)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 1 }
        let replayed = try #require(try await harness.receive(from: "transfers", count: 1).first)
        #expect(replayed.properties.messageId == "m-1")
        #expect(replayed.properties.headers?["x-error-reason"] == nil)
        #expect(replayed.properties.headers?["keep"] == "me")
        #expect(try replayed.decode(TransferRequested.self) == request)
        await harness.tearDown()
    }

    @Test("replay --all hands everything back to the endpoint, which processes it; purge empties the queue")
    func replayAllIntoARunningEndpoint() async throws {
        let harness = try await EndpointHarness.make()
        for index in 0..<3 {
            let request = TransferRequested(transferId: "t-\(index)", fromAccount: "alice", toAccount: "bob", amount: 10)
            try await park(harness, id: "r-\(index)", body: try MessageCoding.encode(request), type: "TransferRequested", reason: "x")
        }
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")
        #expect(try await admin.replayAll().replayed == 3)
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers", "payouts"], database: "sagas")
        let debits = try await harness.receive(from: "bank", count: 3)
        #expect(Set(debits.map { try! $0.decode(DebitAccount.self).transferId }) == ["t-0", "t-1", "t-2"])
        try await park(harness, id: "p-1", body: Data("{}".utf8), type: "X", reason: "x")
        #expect(try await admin.purge() == 1)
        sagas.cancel()
        _ = await sagas.result
        await harness.tearDown()
    }
}
