public import Tracing

/// The tracing of one message while its handlers run: the tracer, and the context of the span the
/// message is processed in (the endpoint's consumer span, a child of the trace the message came with).
///
/// Passed explicitly rather than through the `ServiceContext.current` task-local because saga handlers
/// run synchronously on the store's thread, many messages to a transaction: each message's spans must
/// join that message's own trace, not whatever context the batch happens to run under. Nil when no
/// tracer is installed, so tracing then costs a nil check.
public struct MessageTracing: Sendable {
    public var tracer: any Tracer
    public var context: ServiceContext
    /// The handlers run ahead of the transaction, which may discard their result and run them again
    /// (SagaEndpoint under load): their spans carry `saga.ahead_of_commit = true`, so a message whose
    /// handlers ran twice shows which run's messages were kept (the one without it).
    public var aheadOfCommit = false

    public init(tracer: any Tracer, context: ServiceContext) {
        self.tracer = tracer
        self.context = context
    }

    /// Writes this context into message headers (W3C `traceparent`/`tracestate` with a W3C tracer).
    public func inject(into headers: inout [String: String]) {
        tracer.inject(context, into: &headers, using: HeaderDictionaryInjector())
    }

    /// The context carried by message headers, as a child of `base` (top level by default).
    public static func extract(_ headers: [String: String], tracer: any Tracer,
                               into base: ServiceContext = .topLevel) -> ServiceContext {
        var context = base
        tracer.extract(headers, into: &context, using: HeaderDictionaryExtractor())
        return context
    }
}

/// Reads trace context from a message's string headers.
public struct HeaderDictionaryExtractor: Extractor {
    public init() {}
    public func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// Writes trace context into a message's string headers.
public struct HeaderDictionaryInjector: Injector {
    public init() {}
    public func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}
