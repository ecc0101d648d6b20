import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Testing

/// A replayed message that fails again keeps its history. Failed before: its next error-queue copy said
/// x-attempts 1 and a new x-first-failure, as if it had never failed (found in an operator review).
@Suite("Error queue: a replayed message that fails again", .timeLimit(.minutes(3)))
struct ErrorQueueReplayHistoryTests {
    @Test("its next copy counts the replays and keeps the first failure of its first round")
    func historyKept() async throws {
        let harness = try await EndpointHarness.make()
        let endpoint = harness.startEndpoint(MoneyTransferApp.registry(bankTimeout: .seconds(600)),
                                             queues: ["transfers"], database: "sagas")
        try await harness.sendRaw(Data("{not json".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: "broken-1",
            type: "TransferRequested"), to: "transfers")
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")
        func copy() async throws -> ErrorQueueEntry? {
            try await admin.list().first { $0.messageId == "broken-1" }
        }
        try await waitUntil(timeout: .seconds(20), message: "first failure") { try await copy() != nil }
        let first = try #require(try await copy())
        #expect(first.replays == nil)

        for round in 1...2 {
            // ISO 8601 in whole seconds: a later failure must be told apart from the first.
            try await Task.sleep(for: .milliseconds(1100))
            #expect(try await admin.replay(messageId: "broken-1"))
            try await waitUntil(timeout: .seconds(20), message: "failed again after replay \(round)") {
                try await copy()?.replays == round
            }
            let again = try #require(try await copy())
            #expect(again.firstFailure == first.firstFailure, "round \(round)")
            #expect(again.lastFailure != first.lastFailure, "round \(round)")
            #expect(again.properties.headers?["x-replayed-first-failure"] == nil, "folded into x-first-failure")
        }
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
