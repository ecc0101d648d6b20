import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
import SagaStore
import Sagas
import Synchronization
import Testing
@testable import SagaEndpoint

/// Housekeeping goes round the unconfirmed outbox rows in passes of a page each. A round covers the rows
/// there when it started, and the next round starts from the oldest again. Failed before: a pass went on
/// from where the last one stopped and came back to the start only after a short page, so while new
/// unconfirmed rows (refused by a full queue) kept coming at a page a pass, an old row was never sent again,
/// also once its queue had room (here: never, in 8 passes).
@Suite("Outbox re-send rounds", .timeLimit(.minutes(3)))
struct OutboxRoundTests {
    @Test("an old refused row is sent again while newer refused rows keep coming")
    func oldRowIsNotStarved() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("relays")
        for queue in ["crammed", "jammed"] {
            try await harness.connection.declareQueue(QueueDeclaration(name: queue))
            try await harness.refusePublishes(to: queue, policy: queue + "-full")
        }
        let counter = Counter()
        /// `count` rows committed a minute ago and not confirmed since: the first to `firstTo`, the rest to
        /// the queue that stays full.
        @Sendable func append(_ count: Int, firstTo first: String = "jammed") async throws {
            let start = counter.take(count)
            _ = try await harness.withStore("relays") { store in
                try store.appendOutbox((start..<start + count).map { index in
                    OutboxRecord(messageId: "relay-\(index)", incomingMessageId: "in-\(index)", position: 0,
                                 exchange: "", routingKey: index == start ? first : "jammed", mandatory: true,
                                 messageType: Explode.messageType, body: Data("{}".utf8),
                                 createdAt: Date(timeIntervalSinceNow: -60))
                })
            }
        }
        try await append(10, firstTo: "crammed")
        let (registry, worker, publisher) = try await harness.outboxHousekeeping("relays")
        let endpoint = harness.makeEndpoint(registry, queues: ["relays"], database: "relays")
        let metrics = EndpointMetrics(factory: TestMetrics())
        var cursor = OutboxCursor()
        func pass() async throws {
            // A fresh record of refusals each pass: the re-send spacing is not what this test is about.
            var returned = ReturnedRows()
            cursor = try await endpoint.redispatchOutbox(store: worker, publisher: publisher, metrics: metrics,
                                                         cursor: cursor, returned: &returned, limit: 5).next
        }
        // The first pass: the oldest row is refused with the four after it.
        try await pass()
        #expect(try await harness.depth("crammed") == 0)
        // Its queue has room now; a page of new refused rows comes before each pass.
        let vhost = harness.vhost
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "crammed-full"]) }
        for _ in 0..<8 {
            try await append(5)
            try await pass()
        }
        #expect(try await harness.depth("crammed") == 1, "the oldest row was sent again and taken")
        await publisher.close()
        await worker.close()
        await harness.tearDown()
    }
}

/// Numbers for the rows, handed out in order.
private final class Counter: Sendable {
    private let next = Mutex(0)

    func take(_ count: Int) -> Int {
        next.withLock { value in
            defer { value += count }
            return value
        }
    }
}
