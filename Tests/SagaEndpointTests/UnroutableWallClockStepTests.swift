import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
import SagaStore
import Sagas
import Testing
@testable import SagaEndpoint

/// How long housekeeping has seen an outgoing reply returned (for `unroutableTimeout`) and when it last sent
/// it (for `outboxRedispatchDelay`) are durations this process measures in memory. Measured on the wall
/// clock, an NTP step changed them: forward, a reply returned a moment ago counted as returned for the
/// step's length; backward, the reply was not sent again until the clock had caught up.
@Suite("Unroutable replies across a wall-clock step", .timeLimit(.minutes(3)))
struct UnroutableWallClockStepTests {
    struct Passes {
        let harness: EndpointHarness
        let worker: StoreWorker
        let publisher: AMQPConnection
        let endpoint: SagaEndpoint
        let metrics = TestMetrics()

        /// A reply to a queue that does not exist, committed before a crash (old enough to be sent again).
        static func make() async throws -> Passes {
            let harness = try await EndpointHarness.make()
            try await harness.declareQueue("pings")
            _ = try await harness.withStore("pings") { store in
                try store.appendOutbox([OutboxRecord(
                    messageId: "reply-1", incomingMessageId: "ping-1", position: 0, exchange: "",
                    routingKey: "gone-requester", mandatory: true, messageType: Explode.messageType,
                    body: Data("{}".utf8), createdAt: Date(timeIntervalSinceNow: -60))])
            }
            let (registry, worker, publisher) = try await harness.outboxHousekeeping("pings")
            let endpoint = harness.makeEndpoint(registry, queues: ["pings"], database: "pings") {
                $0.outboxRedispatchDelay = .milliseconds(100)
                $0.unroutableTimeout = .seconds(300)
            }
            return Passes(harness: harness, worker: worker, publisher: publisher, endpoint: endpoint)
        }

        /// One housekeeping pass with the wall clock `offset` seconds off; returns how often the reply has
        /// been sent (and returned) so far.
        func pass(_ returned: inout ReturnedRows, clockOffBy offset: TimeInterval) async throws -> Int64 {
            let metrics = EndpointMetrics(factory: self.metrics)
            _ = try await endpoint.redispatchOutbox(store: worker, publisher: publisher, metrics: metrics, cursor: OutboxCursor(),
                                                    returned: &returned, wallClock: { Date(timeIntervalSinceNow: offset) })
            return (try? self.metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0
        }

        func tearDown() async {
            await publisher.close()
            await worker.close()
            await harness.tearDown()
        }
    }

    // Failed before: the second pass, 400 s ahead, took the reply for returned since 400 s and moved
    // it to the error queue after well under a second (unroutableTimeout is 5 minutes).
    @Test("a clock stepped forward does not move a reply returned a moment ago to the error queue")
    func forwardStep() async throws {
        let passes = try await Passes.make()
        var returned = ReturnedRows()
        #expect(try await passes.pass(&returned, clockOffBy: 0) == 1)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await passes.pass(&returned, clockOffBy: 400) == 2)
        try await Task.sleep(for: .milliseconds(500))
        let errorDepth = try await passes.harness.depth("pings.error")
        let backlog = try await passes.harness.withStore("pings") { try $0.outboxBacklog() }
        await passes.tearDown()
        #expect(errorDepth == 0, "moved to the error queue after being returned for under a second")
        #expect(backlog == 1)
    }

    // Failed before: the second pass, an hour behind, found the reply last sent in its future and did not
    // send it: it would have waited for the clock to catch up, an hour.
    @Test("a clock stepped back does not hold back the next send of a returned reply")
    func backwardStep() async throws {
        let passes = try await Passes.make()
        var returned = ReturnedRows()
        #expect(try await passes.pass(&returned, clockOffBy: 0) == 1)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await passes.pass(&returned, clockOffBy: -3600) == 2, "sent again after outboxRedispatchDelay")
        await passes.tearDown()
    }
}
