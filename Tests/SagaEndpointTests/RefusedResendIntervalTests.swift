import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

/// An outbox row the broker refuses (a full queue under `reject-publish`) is re-sent by housekeeping every
/// `outboxRedispatchDelay`, as the README says, not at every housekeeping pass. Failed before: only rows
/// the broker *returned* were spaced out; a refused row was sent again at every pass (every 2 s by
/// default, every 100 ms here), and an event refused by one full queue of its exchange put a copy into
/// every other bound queue each time, about 30 copies in one delay here instead of at most two.
@Suite("A refused outbox row is re-sent every outboxRedispatchDelay", .timeLimit(.minutes(3)))
struct RefusedResendIntervalTests {
    @Test("an event one of whose queues is full reaches the other queue once per re-send delay")
    func refusedEventSpacedOut() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("announcers")
        try await harness.connection.declareExchange(ExchangeDeclaration(name: "news", kind: .topic))
        for queue in ["crowded", "healthy"] {
            try await harness.connection.declareQueue(QueueDeclaration(name: queue))
            try await harness.connection.bind(BindingDeclaration(source: "news", destination: queue, routingKey: "#"))
        }
        let vhost = harness.vhost
        try await harness.refusePublishes(to: "crowded", policy: "crowded-full")
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { message, context in
            try context.publish(Explode(note: "news of \(message.note)"), to: "news")
        }
        let delay = Duration.seconds(3)
        let endpoint = harness.startEndpoint(registry, queues: ["announcers"], database: "announcers") {
            $0.outboxRedispatchDelay = delay
            // Housekeeping passes every 100 ms: a row re-sent at every pass shows at once.
            $0.housekeepingInterval = .milliseconds(100)
        }
        try await harness.send(Explode(note: "a"), to: "announcers", messageId: "announce-1")

        // The first publish and the first re-send (once the row is `delay` old).
        let first = try await harness.receive(from: "healthy", count: 2, timeout: .seconds(30))
        #expect(Set(first.compactMap(\.properties.messageId)).count == 1, "copies of one event under one id")
        // One more delay: at most one more re-send is due (two, allowing for where the pass falls).
        try await Task.sleep(for: delay)
        let copies = try await harness.depth("healthy")
        #expect(copies <= 2, "copies of the event in the other queue within one re-send delay: \(copies)")
        #expect(try await harness.rowCount("announcers", "outbox", where: "dispatched_at IS NULL") == 1,
                "the refused event stays in the outbox")

        // Room again: the next re-send is confirmed and the row dispatched.
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "crowded-full"]) }
        let delivered = try await harness.receive(from: "crowded", count: 1, timeout: .seconds(30))
        #expect(delivered.first?.properties.messageId == first.first?.properties.messageId)
        try await waitUntil(timeout: .seconds(20), message: "the outbox dispatched") {
            try await harness.rowCount("announcers", "outbox", where: "dispatched_at IS NULL") == 0
        }
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
