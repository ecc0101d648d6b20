import AMQPTransport
import Tracing

/// Reads trace context (W3C `traceparent`/`tracestate` with a W3C tracer) from AMQP message headers.
/// Other clients may send the header as a byte string (AMQP `longstr`), which `stringValue` decodes.
struct AMQPHeaderExtractor: Extractor {
    func extract(key: String, from carrier: FieldTable) -> String? { carrier[key]?.stringValue }
}

/// Writes trace context into AMQP message headers, as strings.
struct AMQPHeaderInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout FieldTable) {
        carrier[key] = .string(value)
    }
}
