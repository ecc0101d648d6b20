import AMQPTransport
import BrokerTestSupport
import Foundation
@testable import SagaEndpoint
import Testing

// `ErrorQueueAdmin.delete(messageId:)`: the pass `replay` makes, removing every copy with the id, each
// only counted once the broker has taken its acknowledgement.
@Suite("Error queue: delete one message", .timeLimit(.minutes(6)))
struct ErrorQueueDeleteTests {
    @Test("a quorum error queue: the copies go, the others stay in their order")
    func quorumQueue() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareQueue(QueueDeclaration(name: "quorum.error", arguments: ["x-queue-type": "quorum"]))
        let ids = ["q-0", "q-1", "gone", "q-2", "gone", "q-3"]
        try await harness.park(ids, in: "quorum.error")
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "quorum.error")

        let deletion = try await admin.delete(messageId: "gone")

        #expect(deletion == ErrorQueueDeletion(messageId: "gone", queue: "quorum.error", deleted: 2))
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("quorum.error") == 4 }
        #expect(try await admin.list().map(\.messageId) == ["q-0", "q-1", "q-2", "q-3"])
        #expect(try await admin.delete(messageId: "gone").deleted == 0)
        await harness.tearDown()
    }

    @Test("other consumers: not found is not absent (typed error); found is deleted and says they were there")
    func otherConsumers() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["h-0", "h-1", "h-2"])
        let holder = try await harness.connection.consume(queue: "transfers.error", prefetch: 1)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")

        await #expect(throws: ErrorQueueScanIncomplete.self) { try await admin.delete(messageId: "h-0") }
        let deletion = try await admin.delete(messageId: "h-2")
        #expect(deletion.deleted == 1 && deletion.otherConsumers == 1)

        let run = try await harness.errorsCommand(["delete", "h-1"])
        #expect(run.status == 0 && run.output.contains("deleted 1 message(s) with id h-1"), "\(run)")
        #expect(run.errorOutput.contains("note: 1 other consumer was attached to transfers.error"), "\(run)")
        // The holder hands h-0 back: only h-0 is left.
        for try await held in holder.deliveries {
            try await harness.connection.nack(held.tag, requeue: true)
            break
        }
        try await holder.cancel()
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 1 }
        #expect(try await admin.list().map(\.messageId) == ["h-0"])
        await harness.tearDown()
    }

    @Test("the connection lost right after a deletion: the pass fails, and the deleted message is gone for good")
    func connectionLostAfterADeletion() async throws {
        let harness = try await EndpointHarness.make()
        let ids = (0..<12).map { "c-\($0)" }
        try await harness.park(ids)
        let scanner = try await AMQPConnection.connect(url: harness.url, connectionName: "deleter")
        let scan = ErrorQueueScan(connection: scanner, queue: "transfers.error", window: 5)

        var removed: [String] = []
        var failed = false
        do {
            _ = try await scan.run(removed: { removed.append($0.properties.messageId ?? "") }) { delivery in
                let id = delivery.properties.messageId ?? ""
                if id == "c-3" { return .delete }
                if id == "c-4", !failed {
                    // At once after the confirmed ack: a plain ack could still be in the socket here.
                    failed = true
                    await scanner.simulateNetworkFailure()
                    try await Task.sleep(for: .seconds(1))
                    try await scanner.waitUntilConnected()
                }
                return .keep
            }
            Issue.record("a pass that lost the messages it held ended without saying so")
        } catch {
            #expect(error is ErrorQueueScanInterrupted, "\(error)")
        }

        #expect(removed == ["c-3"])
        await scanner.close()
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == ids.count - 1 }
        let left = try await ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error").list()
        #expect(left.map(\.messageId).sorted() == ids.filter { $0 != "c-3" }.sorted())
        await harness.tearDown()
    }
}
