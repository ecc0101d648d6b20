import AMQPTransport
import BrokerTestSupport
import Foundation
import InMemoryTracing
import SagaEndpoint
import Sagas
import Testing
import TracingTestSupport

/// The message span of a delivery whose command the broker returned (no queue) or refused (a queue full
/// under an operator's `reject-publish` policy). The delivery is acknowledged (the command is safe in the
/// outbox, which sends it again). Failed before: its span said `saga.settlement: requeue` with an error
/// status, "the message will be redelivered", which never happened.
@Suite("Span of a message whose command stays in the outbox", .timeLimit(.minutes(3)))
struct OutboxSettlementSpanTests {
    @Test("a command returned or refused: the span says ack, not an error")
    func acknowledgedSpan() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("forwarders")
        try await harness.connection.declareQueue(QueueDeclaration(name: "stuffed"))
        try await harness.refusePublishes(to: "stuffed", policy: "stuffed-full")
        var registry = HandlerRegistry()
        // "stuffed" is full; "absent" does not exist.
        registry.handle(Explode.self) { message, context in try context.send(Explode(note: "on"), to: message.note) }
        let tracer = W3CInMemoryTracer()
        let running = harness.startEndpoint(registry, queues: ["forwarders"], database: "forwarders", tracer: tracer)
        try await harness.send(Explode(note: "stuffed"), to: "forwarders", messageId: "to-stuffed")
        try await harness.send(Explode(note: "absent"), to: "forwarders", messageId: "to-absent")
        try await waitUntil(timeout: .seconds(30), message: "both deliveries acknowledged") {
            try await harness.depth("forwarders") == 0
                && tracer.finishedSpans.filter { $0.operationName == "process forwarders" }.count >= 2
        }
        for id in ["to-stuffed", "to-absent"] {
            let span = try #require(tracer.finishedSpans.first {
                $0.operationName == "process forwarders" && $0.string("messaging.message.id") == id
            })
            #expect(span.string("saga.settlement") == "ack", "\(id)")
            #expect(span.status?.code != .error, "\(id): \(String(describing: span.status))")
        }
        await harness.stop(running)
        await harness.tearDown()
    }
}
