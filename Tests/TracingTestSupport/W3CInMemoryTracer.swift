import Foundation
public import InMemoryTracing
public import Tracing

/// `InMemoryTracer` with W3C `traceparent` propagation and W3C-shaped ids.
///
/// `InMemoryTracer` records spans but propagates its own `in-memory-trace-id` / `in-memory-span-id`
/// headers. A production tracer (swift-otel) reads and writes `traceparent`, and that is what the
/// endpoint's contract is about, so the tests put W3C propagation in front of the recording tracer:
/// a trace id sent in a `traceparent` must come out in the `traceparent` of what the saga sends.
public struct W3CInMemoryTracer: Tracer {
    public let recorder: InMemoryTracer

    public init() {
        recorder = InMemoryTracer(
            idGenerator: .init(nextTraceID: { Self.randomHex(bytes: 16) }, nextSpanID: { Self.randomHex(bytes: 8) }),
            recordInjections: false, recordExtractions: false)
    }

    public var finishedSpans: [FinishedInMemorySpan] { recorder.finishedSpans }
    public var activeSpans: [InMemorySpan] { recorder.activeSpans }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> InMemorySpan {
        recorder.startSpan(operationName, context: context(), ofKind: kind, at: instant(), function: function,
                           file: fileID, line: line)
    }

    public func forceFlush() { recorder.forceFlush() }

    public func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Carrier == Extract.Carrier {
        guard let header = extractor.extract(key: "traceparent", from: carrier),
              let parsed = Self.parse(traceparent: header) else { return }
        context.inMemorySpanContext = InMemorySpanContext(traceID: parsed.traceID, spanID: parsed.spanID, parentSpanID: nil)
    }

    public func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Carrier == Inject.Carrier {
        guard let span = context.inMemorySpanContext else { return }
        injector.inject("00-\(span.traceID)-\(span.spanID)-01", forKey: "traceparent", into: &carrier)
    }

    /// The trace id and parent span id of a version-00 `traceparent`, nil when it is not one.
    public static func parse(traceparent: String) -> (traceID: String, spanID: String)? {
        let parts = traceparent.split(separator: "-")
        guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16 else { return nil }
        return (String(parts[1]), String(parts[2]))
    }

    static func randomHex(bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

extension FinishedInMemorySpan {
    /// A string attribute's value, for assertions.
    public func string(_ key: String) -> String? {
        if case .string(let value) = attributes.get(key) { return value }
        return nil
    }
}
