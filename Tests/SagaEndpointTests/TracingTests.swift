import AMQPTransport
import BrokerTestSupport
import Foundation
import InMemoryTracing
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing
import Tracing
import TracingTestSupport

/// Issue 8: a trace id sent in survives into the emitted messages, through the real broker. The tracer is
/// passed to the endpoint, never bootstrapped (`InstrumentationSystem` is process-wide and the tests run
/// in parallel).
@Suite("Tracing on the real broker", .timeLimit(.minutes(6)))
struct TracingTests {
    static func traceparent() -> (header: String, traceID: String, spanID: String) {
        let traceID = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let spanID = String(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))
        return ("00-\(traceID)-\(spanID)-01", traceID, spanID)
    }

    @Test("without a tracer, the traceparent and tracestate sent in are carried into the saga's command")
    func headersCarriedWithoutTracer() async throws {
        let harness = try await EndpointHarness.make()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers"], database: "sagas",
                                          tracer: NoOpTracer())
        let incoming = Self.traceparent()
        try await harness.send(TransferRequested(transferId: "t-plain", fromAccount: "alice", toAccount: "bob", amount: 100),
                               to: "transfers", headers: ["traceparent": incoming.header, "tracestate": "vendor=1"])
        let debit = try #require(try await harness.receive(from: "bank", count: 1).first)
        #expect(debit.properties.type == DebitAccount.messageType)
        #expect(debit.header("traceparent") == incoming.header)
        #expect(debit.header("tracestate") == "vendor=1")
        await harness.stop(sagas)
        await harness.tearDown()
    }

    @Test("with a tracer: the command continues the trace from a publish span, under handle and process spans")
    func spansChainWithTracer() async throws {
        let harness = try await EndpointHarness.make()
        let tracer = W3CInMemoryTracer()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers"], database: "sagas",
                                          tracer: tracer)
        let incoming = Self.traceparent()
        try await harness.send(TransferRequested(transferId: "t-traced", fromAccount: "alice", toAccount: "bob", amount: 100),
                               to: "transfers", messageId: "request-traced", headers: ["traceparent": incoming.header])
        let debit = try #require(try await harness.receive(from: "bank", count: 1).first)
        let carried = try #require(W3CInMemoryTracer.parse(traceparent: debit.header("traceparent") ?? ""))
        #expect(carried.traceID == incoming.traceID)
        #expect(carried.spanID != incoming.spanID)

        // The message span ends once the request is acked, just after the command was confirmed.
        try await waitUntil(timeout: .seconds(30)) { tracer.finishedSpans.contains { $0.operationName == "process transfers" } }
        let spans = tracer.finishedSpans.filter { $0.traceID == incoming.traceID }
        let process = try #require(spans.first { $0.operationName == "process transfers" })
        let handle = try #require(spans.first { $0.operationName == "handle TransferSaga" })
        let publish = try #require(spans.first { $0.operationName == "publish bank" })

        #expect(process.kind == .consumer)
        #expect(process.parentSpanID == incoming.spanID)
        #expect(process.string("messaging.system") == "rabbitmq")
        #expect(process.string("messaging.destination.name") == "transfers")
        #expect(process.string("messaging.operation.type") == "process")
        #expect(process.string("messaging.message.id") == "request-traced")
        #expect(process.string("saga.settlement") == "ack")
        #expect(process.status?.code != .error)

        #expect(handle.kind == .internal)
        #expect(handle.parentSpanID == process.spanID)
        #expect(handle.string("saga.type") == TransferSaga.sagaType)
        #expect(handle.string("saga.correlation_id") == "t-traced")

        #expect(publish.kind == .producer)
        #expect(publish.parentSpanID == handle.spanID)
        #expect(publish.spanID == carried.spanID)
        #expect(publish.string("messaging.destination.name") == "bank")
        #expect(publish.string("messaging.rabbitmq.destination.routing_key") == "bank")
        #expect(publish.string("messaging.message.id") == debit.properties.messageId)
        #expect(publish.string("messaging.operation.type") == "send")
        #expect(tracer.activeSpans.isEmpty)
        await harness.stop(sagas)
        await harness.tearDown()
    }

    @Test("in one batch, each message's spans and command stay in that message's own trace")
    func batchKeepsTracesApart() async throws {
        let harness = try await EndpointHarness.make()
        // Queued before the endpoint starts, so they arrive together and share batches.
        var traces: [String: String] = [:]
        for index in 0..<8 {
            let incoming = Self.traceparent()
            traces["t-batch-\(index)"] = incoming.traceID
            try await harness.send(TransferRequested(transferId: "t-batch-\(index)", fromAccount: "alice", toAccount: "bob", amount: 10),
                                   to: "transfers", headers: ["traceparent": incoming.header])
        }
        let tracer = W3CInMemoryTracer()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers"], database: "sagas",
                                          tracer: tracer)
        let debits = try await harness.receive(from: "bank", count: traces.count)
        #expect(debits.count == traces.count)
        for debit in debits {
            let transferId = try #require(debit.properties.correlationId)
            #expect(W3CInMemoryTracer.parse(traceparent: debit.header("traceparent") ?? "")?.traceID == traces[transferId])
        }
        try await waitUntil(timeout: .seconds(30)) {
            tracer.finishedSpans.filter { $0.operationName == "process transfers" }.count == traces.count
        }
        for span in tracer.finishedSpans where span.operationName == "handle TransferSaga" {
            #expect(span.traceID == traces[span.string("saga.correlation_id") ?? ""])
        }
        await harness.stop(sagas)
        await harness.tearDown()
    }

    @Test("a rejected message's span records the error")
    func rejectionIsAnErrorSpan() async throws {
        let harness = try await EndpointHarness.make()
        let tracer = W3CInMemoryTracer()
        let sagas = harness.startEndpoint(MoneyTransferApp.registry(), queues: ["transfers"], database: "sagas",
                                          tracer: tracer)
        let incoming = Self.traceparent()
        try await harness.sendRaw(Data("{".utf8), properties: BasicProperties(
            contentType: "application/json", headers: ["traceparent": .string(incoming.header)], deliveryMode: .persistent,
            messageId: "broken-1", type: TransferRequested.messageType), to: "transfers")
        _ = try await harness.errorMessages(of: "transfers", count: 1)
        try await waitUntil(timeout: .seconds(30)) { tracer.finishedSpans.contains { $0.traceID == incoming.traceID } }
        let process = try #require(tracer.finishedSpans.first { $0.operationName == "process transfers" })
        #expect(process.parentSpanID == incoming.spanID)
        #expect(process.status?.code == .error)
        #expect(!process.errors.isEmpty)
        await harness.stop(sagas)
        await harness.tearDown()
    }
}
