import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing
import Tracing
import TracingTestSupport

/// `MessageSession` given a `traceparent` in `headers` (a web application forwarding an incoming HTTP
/// request's W3C header, with no span of its own).
@Suite("Message session trace header", .timeLimit(.minutes(6)))
struct MessageSessionTraceHeaderTests {
    // Failed before: with a tracer bootstrapped and no current span, the session started a root "publish"
    // span and wrote its context over the caller's traceparent, so the message left in a new trace of its
    // own (without a tracer the same header went through untouched), unlike a handler, where a traceparent
    // the handler sets itself wins.
    @Test("outside a span, a traceparent the caller passes is the publish span's parent and stays the trace")
    func callersTraceparentKept() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("orders-in")
        let tracer = W3CInMemoryTracer()
        let session = MessageSession(connection: harness.connection, tracer: tracer)
        let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        let parentID = "00f067aa0ba902b7"
        try await session.send(TransferRequested(transferId: "t-header", fromAccount: "a", toAccount: "b", amount: 1),
                               to: "orders-in", headers: ["traceparent": "00-\(traceID)-\(parentID)-01"])
        let delivery = try #require(try await harness.receive(from: "orders-in", count: 1).first)
        let sent = W3CInMemoryTracer.parse(traceparent: delivery.header("traceparent") ?? "")
        #expect(sent?.traceID == traceID)
        let publish = try #require(tracer.finishedSpans.first { $0.operationName == "publish orders-in" })
        #expect(publish.traceID == traceID)
        #expect(publish.parentSpanID == parentID)
        #expect(sent?.spanID == publish.spanID)
        await harness.tearDown()
    }
}

extension MessageSessionTraceHeaderTests {
    @Test("inside a span, a traceparent the tracer cannot read leaves the span the parent")
    func unreadableTraceparentKeepsTheSpan() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("orders-in")
        let tracer = W3CInMemoryTracer()
        let session = MessageSession(connection: harness.connection, tracer: tracer)
        let traceID = try await tracer.withSpan("checkout") { span in
            try await session.send(TransferRequested(transferId: "t-bad", fromAccount: "a", toAccount: "b", amount: 1),
                                   to: "orders-in", headers: ["traceparent": "not a traceparent"])
            return span.context.inMemorySpanContext?.traceID
        }
        let delivery = try #require(try await harness.receive(from: "orders-in", count: 1).first)
        #expect(traceID != nil)
        #expect(W3CInMemoryTracer.parse(traceparent: delivery.header("traceparent") ?? "")?.traceID == traceID)
        await harness.tearDown()
    }
}
