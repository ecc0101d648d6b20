import AMQPTransport
import Foundation
import InMemoryTracing
@testable import SagaEndpoint
import Testing
import Tracing
import TracingTestSupport

/// The pipeline's tracing pieces without a broker.
@Suite("Pipeline tracing")
struct PipelineTracingTests {
    @Test("the no-op tracer turns tracing off entirely (the pipeline then holds nil)")
    func noOpTracerIsOff() {
        #expect(PipelineTracing(NoOpTracer()) == nil)
        #expect(PipelineTracing(W3CInMemoryTracer()) != nil)
    }

    // An outbox row keeps the context its handle span wrote at emit time; whenever the row is published
    // (at once, or again by housekeeping after a crash) the publish span continues that trace.
    @Test("a publish span is a child of the context stored with the outbox row, and goes on the wire")
    func publishContinuesTheStoredTrace() throws {
        let tracer = W3CInMemoryTracer()
        let tracing = try #require(PipelineTracing(tracer))
        let stored = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        var requests = [
            PublishRequest(exchange: "", routingKey: "bank", message: AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
                headers: ["traceparent": .string(stored)], messageId: "m-1", type: "DebitAccount"))),
            PublishRequest(exchange: "", routingKey: "transfers.error", message: AMQPMessage(body: Data())),
        ]
        let spans = tracing.startPublishing(&requests, at: [0])
        spans.end([.confirmed, .confirmed])

        let span = try #require(tracer.finishedSpans.first)
        #expect(tracer.finishedSpans.count == 1)
        #expect(span.operationName == "publish bank")
        #expect(span.kind == .producer)
        #expect(span.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(span.parentSpanID == "b7ad6b7169203331")
        #expect(span.string("messaging.message.id") == "m-1")
        let sent = try #require(W3CInMemoryTracer.parse(traceparent: requests[0].message.properties.headers?["traceparent"]?.stringValue ?? ""))
        #expect(sent.traceID == span.traceID)
        #expect(sent.spanID == span.spanID)
        // Only the listed requests are traced (the error-queue copy is not an outgoing message).
        #expect(requests[1].message.properties.headers == nil)
    }

    @Test("an unconfirmed publish ends its span with an error status")
    func unconfirmedPublishIsAnError() throws {
        let tracer = W3CInMemoryTracer()
        let tracing = try #require(PipelineTracing(tracer))
        var requests = [PublishRequest(exchange: "events", routingKey: "TransferCompleted", message: AMQPMessage(body: Data()))]
        tracing.startPublishing(&requests, at: [0]).end([.returned(replyCode: 312, replyText: "NO_ROUTE")])
        let span = try #require(tracer.finishedSpans.first)
        #expect(span.operationName == "publish events")
        #expect(span.parentSpanID == nil)
        #expect(span.status?.code == .error)
    }
}
