import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// Housekeeping sends again the outbox rows left unconfirmed (a crash between commit and confirm) once
/// they are `outboxRedispatchDelay` old by their `created_at`, a wall-clock time. A row written while the
/// clock was ahead (stepped back since by NTP, or a VM resumed with a stale clock corrected after the
/// crash) looks as if written in the future.
@Suite("Outbox rows written under a clock that was ahead", .timeLimit(.minutes(3)))
struct OutboxWrittenUnderClockAheadTests {
    // Failed before: the row was older than the cutoff only once the clock had caught up again, so the
    // command a crashed saga step committed stayed unsent for as long as the clock had been ahead (an
    // hour here). A timeout's step, or an acked message's, has no redelivery to send it instead.
    @Test("an unconfirmed outbox row dated an hour ahead is sent at the next housekeeping pass")
    func rowFromTheFutureIsSent() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("clockwork")
        try await harness.declareQueue("clockwork.out")
        _ = try await harness.withStore("clockwork") { store in
            try store.appendOutbox([OutboxRecord(
                messageId: "ahead-1", incomingMessageId: "timeout-ahead", position: 0, exchange: "",
                routingKey: "clockwork.out", mandatory: true, messageType: Explode.messageType,
                body: try MessageCoding.encode(Explode(note: "ahead")), createdAt: Date(timeIntervalSinceNow: 3600))])
        }
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in }
        let endpoint = harness.startEndpoint(registry, queues: ["clockwork"], database: "clockwork") {
            $0.outboxRedispatchDelay = .milliseconds(200)
        }
        let out = try await harness.receive(from: "clockwork.out", count: 1, timeout: .seconds(15))
        #expect(out.map(\.properties.messageId) == ["ahead-1"])
        try await waitUntil(timeout: .seconds(10)) {
            try await harness.withStore("clockwork") { try $0.outboxBacklog() } == 0
        }
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
