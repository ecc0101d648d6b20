import Tracing

/// The "handle" span around one handler invocation: a child of the message's span, and the context its
/// emitted messages carry (`HandlerContext` injects it into their headers at emit time, so the context is
/// stored with them in the outbox and survives a re-send after a crash).
enum HandlerSpan {
    /// Runs a synchronous handler (a saga's, on the store's thread) in the span, if tracing.
    static func run<T>(_ tracing: MessageTracing?, handler: String, context: HandlerContext,
                       _ body: () throws -> T) rethrows -> T {
        guard let tracing else { return try body() }
        let span = start(tracing, handler: handler, context: context)
        defer { finish(span, context: context) }
        do {
            return try body()
        } catch {
            fail(span, error)
            throw error
        }
    }

    /// Runs an async stateless handler in the span. It also becomes the task's current context: such a
    /// handler calls out (an HTTP API) from its own task, and instrumented clients read the task-local.
    static func run<T>(_ tracing: MessageTracing?, handler: String, context: HandlerContext,
                       _ body: () async throws -> T) async rethrows -> T {
        guard let tracing else { return try await body() }
        let span = start(tracing, handler: handler, context: context)
        defer { finish(span, context: context) }
        do {
            return try await ServiceContext.withValue(span.context) { try await body() }
        } catch {
            fail(span, error)
            throw error
        }
    }

    private static func start(_ tracing: MessageTracing, handler: String, context: HandlerContext) -> any Span {
        let span = tracing.tracer.startSpan("handle \(handler)", context: tracing.context, ofKind: .internal)
        span.updateAttributes { attributes in
            attributes["saga.handler"] = handler
            attributes["saga.message_type"] = context.incoming.type
            attributes["messaging.message.id"] = context.incoming.messageId
            if tracing.aheadOfCommit { attributes["saga.ahead_of_commit"] = true }
            if let saga = context.saga {
                attributes["saga.type"] = saga.sagaType
                attributes["saga.correlation_id"] = saga.correlationId
            }
        }
        context.tracing = MessageTracing(tracer: tracing.tracer, context: span.context)
        return span
    }

    private static func finish(_ span: any Span, context: HandlerContext) {
        span.updateAttributes { attributes in
            attributes["saga.emitted"] = context.outgoing.count
            if context.saga != nil { attributes["saga.completed"] = context.isCompleted }
        }
        span.end()
    }

    private static func fail(_ span: any Span, _ error: any Error) {
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error, message: "\(error)"))
    }
}
