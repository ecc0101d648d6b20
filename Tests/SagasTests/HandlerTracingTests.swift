import Foundation
import InMemoryTracing
import Sagas
import SagaTesting
import Synchronization
import Testing
import Tracing
import TracingTestSupport

/// Handle spans and the trace context of emitted messages, with a tracer passed to the host (never
/// bootstrapped: `InstrumentationSystem` is process-wide and tests run in parallel).
@Suite("Handler tracing")
struct HandlerTracingTests {
    struct Ping: Message { static let messageType = "Ping"; var id: String; var fail = false }
    struct Pong: Message { static let messageType = "Pong"; var id: String }
    struct Wake: Message { static let messageType = "Wake"; var id: String }
    struct Boom: Error {}

    struct PingSaga: Saga {
        static let sagaType = "PingSaga"
        var id: String
        static func define(_ saga: inout SagaDefinition<PingSaga>) {
            saga.startedBy(Ping.self, correlatedBy: \.id) { ping, context in
                if ping.fail { throw Boom() }
                try context.send(Pong(id: ping.id), to: "pongs")
                try context.publish(Pong(id: ping.id), to: "events", headers: ["traceparent": "explicit"])
                try context.requestTimeout(after: .seconds(5), Wake(id: ping.id))
                return PingSaga(id: ping.id)
            }
            saga.handlesTimeout(Wake.self) { _, _, context in try context.markComplete() }
        }
    }

    static let incomingTraceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let incomingSpanId = "00f067aa0ba902b7"
    static let traceparent = "00-\(incomingTraceId)-\(incomingSpanId)-01"

    @Test("emitted messages carry the handle span's context: same trace, the span as parent")
    func emittedMessagesCarryTheHandleSpan() async throws {
        let tracer = W3CInMemoryTracer()
        let host = SagaTestHost(PingSaga.self)
        host.tracer = tracer
        let result = try await host.deliver(Ping(id: "p1"), headers: ["traceparent": Self.traceparent, "tracestate": "x=1"])

        let handle = try #require(tracer.finishedSpans.first { $0.operationName == "handle PingSaga" })
        #expect(handle.kind == .internal)
        #expect(handle.traceID == Self.incomingTraceId)
        #expect(handle.parentSpanID == Self.incomingSpanId)
        #expect(handle.string("saga.type") == "PingSaga")
        #expect(handle.string("saga.correlation_id") == "p1")
        #expect(handle.attributes.get("saga.emitted") == .int64(2))

        let sent = try #require(result.sent.first)
        let carried = try #require(W3CInMemoryTracer.parse(traceparent: sent.headers["traceparent"] ?? ""))
        #expect(carried.traceID == Self.incomingTraceId)
        #expect(carried.spanID == handle.spanID)
        // The tracer wrote no tracestate, so the incoming one still travels.
        #expect(sent.headers["tracestate"] == "x=1")
        // A header the handler set itself wins over the tracer's.
        #expect(result.published.first?.headers["traceparent"] == "explicit")
    }

    @Test("a timeout carries the trace, so the trace continues when it falls due")
    func timeoutsCarryTheTrace() async throws {
        let tracer = W3CInMemoryTracer()
        let host = SagaTestHost(PingSaga.self)
        host.tracer = tracer
        try await host.deliver(Ping(id: "p2"), headers: ["traceparent": Self.traceparent])
        let timeout = try #require(host.pendingTimeouts(of: PingSaga.self, correlationId: "p2").first)
        let carried = try #require(W3CInMemoryTracer.parse(traceparent: timeout.headers["traceparent"] ?? ""))
        #expect(carried.traceID == Self.incomingTraceId)

        try await host.advanceTime(by: .seconds(6))
        let wake = try #require(tracer.finishedSpans.first { $0.operationName == "handle PingSaga" && $0.string("saga.message_type") == "Wake" })
        #expect(wake.traceID == Self.incomingTraceId)
        #expect(wake.attributes.get("saga.completed") == .bool(true))
    }

    @Test("without a tracer the incoming traceparent is copied into timeouts too")
    func timeoutsCarryTheHeaderWithoutTracer() async throws {
        let host = SagaTestHost(PingSaga.self)
        try await host.deliver(Ping(id: "p3"), headers: ["traceparent": Self.traceparent])
        let timeout = try #require(host.pendingTimeouts(of: PingSaga.self, correlationId: "p3").first)
        #expect(timeout.headers["traceparent"] == Self.traceparent)
    }

    @Test("a handler that throws leaves an error on its span")
    func handlerErrorIsRecorded() async throws {
        let tracer = W3CInMemoryTracer()
        let host = SagaTestHost(PingSaga.self)
        host.tracer = tracer
        await #expect(throws: Boom.self) {
            try await host.deliver(Ping(id: "p4", fail: true), headers: ["traceparent": Self.traceparent])
        }
        let handle = try #require(tracer.finishedSpans.first { $0.operationName == "handle PingSaga" })
        #expect(handle.status?.code == .error)
        #expect(handle.errors.count == 1)
    }

    @Test("a stateless handler runs with its handle span as the task's current context")
    func statelessHandlerSeesItsSpan() async throws {
        let tracer = W3CInMemoryTracer()
        let seen = SeenContext()
        var registry = HandlerRegistry()
        registry.handle(Ping.self) { ping, context in
            seen.set(ServiceContext.current?.inMemorySpanContext?.spanID)
            try context.reply(Pong(id: ping.id))
        }
        let host = SagaTestHost(registry: registry)
        host.tracer = tracer
        let result = try await host.deliver(Ping(id: "p5"), replyTo: "callers", headers: ["traceparent": Self.traceparent])
        let handle = try #require(tracer.finishedSpans.first { $0.operationName == "handle Ping" })
        #expect(seen.value == handle.spanID)
        #expect(handle.parentSpanID == Self.incomingSpanId)
        let reply = try #require(result.emitted.first)
        #expect(W3CInMemoryTracer.parse(traceparent: reply.headers["traceparent"] ?? "")?.spanID == handle.spanID)
    }
}

/// What a handler saw, read back by the test (the handler is `@Sendable`).
final class SeenContext: Sendable {
    private let box = Mutex<String?>(nil)
    func set(_ value: String?) { box.withLock { $0 = value } }
    var value: String? { box.withLock { $0 } }
}
