import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
import SagaStore
import Sagas
import Testing
@testable import SagaEndpoint

/// A housekeeping pass re-sends up to a page of unconfirmed outbox rows. When a whole page went out and was
/// confirmed, more rows wait and the broker takes them, so the next pass goes at once instead of after the
/// housekeeping sleep (a backlog of refused rows drained at about 250 a second once its queue had room).
@Suite("Outbox backlog passes", .timeLimit(.minutes(3)))
struct OutboxBacklogPassTests {
    @Test("a full page confirmed says the next pass may go at once; a short page or a refused row does not")
    func fullPagesGoOnAtOnce() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("relays")
        try await harness.connection.declareQueue(QueueDeclaration(name: "downstream"))
        try await harness.connection.declareQueue(QueueDeclaration(name: "crammed"))
        try await harness.refusePublishes(to: "crammed", policy: "crammed-full")
        // 25 commands committed a minute ago and never confirmed (a crash after the commit), then one for a
        // full queue.
        _ = try await harness.withStore("relays") { store in
            let rows = (0..<26).map { index in
                OutboxRecord(messageId: "relay-\(index)", incomingMessageId: "in-\(index)", position: 0, exchange: "",
                             routingKey: index < 25 ? "downstream" : "crammed", mandatory: true,
                             messageType: Explode.messageType, body: Data("{}".utf8),
                             createdAt: Date(timeIntervalSinceNow: -60))
            }
            try store.appendOutbox(rows)
        }
        let (registry, worker, publisher) = try await harness.outboxHousekeeping("relays")
        let endpoint = harness.makeEndpoint(registry, queues: ["relays"], database: "relays") {
            $0.outboxRedispatchDelay = .milliseconds(100)
        }
        let metrics = EndpointMetrics(factory: TestMetrics())
        var returned = ReturnedRows()
        var passes: [Bool] = []
        var cursor = OutboxCursor()
        repeat {
            let pass = try await endpoint.redispatchOutbox(store: worker, publisher: publisher, metrics: metrics,
                                                           cursor: cursor, returned: &returned, limit: 10)
            passes.append(pass.fullAndConfirmed)
            cursor = pass.next
        } while cursor != OutboxCursor()
        // Rows 0–9 and 10–19: full and confirmed; 20–24 and the refused one: neither.
        #expect(passes == [true, true, false])
        #expect(try await harness.depth("downstream") == 25)
        await publisher.close()
        await worker.close()
        await harness.tearDown()
    }
}
