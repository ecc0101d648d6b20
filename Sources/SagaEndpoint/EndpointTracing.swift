import AMQPTransport
import SagaStore
import Sagas
import Tracing

/// The endpoint's spans, after the OpenTelemetry messaging conventions (`messaging.*` attributes, span
/// names "<operation> <destination>"), with saga attributes of our own (`saga.*`):
///
/// - one span per message: "process <queue>" (kind consumer) for a delivery, whose parent is the trace
///   context of the delivery's headers; "timeout <saga type>" / "retry <queue>" (internal) for a saga
///   timeout or a parked retry falling due, continuing the trace they were stored with;
/// - "handle <saga type or message type>" (internal) around each handler, child of the message's span
///   (see `HandlerSpan` in `Sagas`);
/// - "publish <destination>" (producer) per outgoing message, child of the handle span that emitted it.
///
/// A batch holds messages of many traces, so every span is started with an explicit parent context,
/// never the task-local one. The pipeline holds this as an optional that is nil without a tracer, so then
/// the per-message cost is a nil check and nothing is allocated.
struct PipelineTracing: Sendable {
    let tracer: any Tracer

    /// Nil for the no-op tracer (nothing bootstrapped), so the pipeline skips all tracing work.
    init?(_ tracer: any Tracer) {
        if tracer is NoOpTracer { return nil }
        self.tracer = tracer
    }

    // MARK: Message spans

    /// Starts the entry's message span and hands its context to the handlers (through the work item).
    func start(_ entry: inout BatchPipeline.Entry) {
        let span: any Span
        switch entry.source {
        case .delivery(let delivery):
            var parent = ServiceContext.topLevel
            if let headers = delivery.properties.headers {
                tracer.extract(headers, into: &parent, using: AMQPHeaderExtractor())
            }
            span = tracer.startSpan("process \(delivery.queue)", context: parent, ofKind: .consumer)
            span.updateAttributes { attributes in
                attributes["messaging.system"] = "rabbitmq"
                attributes["messaging.operation.type"] = "process"
                attributes["messaging.operation.name"] = "process"
                attributes["messaging.destination.name"] = delivery.queue
                attributes["messaging.rabbitmq.destination.routing_key"] = delivery.routingKey
                attributes["messaging.rabbitmq.message.delivery_tag"] = Int(truncatingIfNeeded: delivery.tag.value)
                attributes["messaging.message.body.size"] = delivery.message.body.count
                Self.describe(message: delivery.properties, into: &attributes)
            }
        case .due(let row):
            // Stored with the headers of the message that asked for it (trace context included).
            let incoming = entry.incoming ?? MessageTranslation.incoming(row)
            let parent = MessageTracing.extract(incoming.headers, tracer: tracer)
            let name = row.sagaType.isEmpty ? "retry \(incoming.queue)" : "timeout \(row.sagaType)"
            span = tracer.startSpan(name, context: parent, ofKind: .internal)
            span.updateAttributes { attributes in
                attributes["messaging.message.id"] = incoming.messageId
                attributes["saga.message_type"] = incoming.type
                if !row.sagaType.isEmpty {
                    attributes["saga.type"] = row.sagaType
                    attributes["saga.correlation_id"] = row.correlationId
                }
            }
        }
        entry.span = span
        entry.item?.tracing = MessageTracing(tracer: tracer, context: span.context)
    }

    /// Ends the entry's message span once the message is settled, with what became of it. Failures
    /// (rejection, handler error, requeue) set an error status: the message was not processed this time.
    func finish(_ entry: BatchPipeline.Entry, outcomes: [PublishOutcome], outboxPublishes: Set<Int>) {
        guard let span = entry.span else { return }
        var failed = false
        func fail(_ error: any Error) {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
            failed = true
        }
        if let rejection = entry.rejection {
            fail(rejection)
        } else if let error = entry.handlerError {
            fail(error)
        } else if let result = entry.result {
            switch result {
            case .processed(let outbox, _): span.attributes["saga.outgoing"] = outbox.count
            case .duplicate(let undispatched):
                span.attributes["saga.duplicate"] = true
                span.attributes["saga.outgoing"] = undispatched.count
            case .deferred: span.attributes["saga.deferred"] = true
            case .withdrawn: span.attributes["saga.withdrawn"] = true
            case .notFound(_, let saga): span.attributes["saga.not_found"] = saga.description
            case .failed(let error): fail(error)
            }
        }
        // An outbox row returned or refused does not hold the delivery (it is acked; the outbox sends the
        // row again): counted as unconfirmed, the span said "requeue" and "will be redelivered" for it.
        let unconfirmed = entry.publishes.contains {
            !outcomes[$0].isConfirmed
                && !BatchPipeline.staysInOutbox(outcomes[$0], publish: $0, outboxPublishes: outboxPublishes)
        }
        let requeued = entry.settle == .requeue || unconfirmed
        // A delivery to be tried again is kept in the process (`HeldDeliveries`), not handed back; a due
        // row stays due.
        span.attributes["saga.settlement"] = !requeued ? "ack" : entry.delivery != nil ? "retry" : "requeue"
        if requeued, !failed {
            span.setStatus(SpanStatus(code: .error, message: unconfirmed
                ? "outgoing message not confirmed; the message will be processed again"
                : "the message will be processed again"))
        }
        span.end()
    }

    // MARK: Publish spans

    /// Starts a producer span for each outgoing message at `indices` and writes its context into the
    /// message's headers, replacing the one stored with the outbox row.
    ///
    /// One span per message rather than one per batch with links: a batch holds messages of many traces,
    /// and each publish belongs in the trace of the message that caused it. The parent is the context
    /// stored in the outbox row's headers (the handle span that emitted it, injected at emit time), so a
    /// re-send after a crash joins the same trace; the receiver's consumer span becomes this span's
    /// child. The spans of a batch share start and end: the messages go out together and their confirms
    /// are awaited together.
    func startPublishing(_ requests: inout [PublishRequest], at indices: some Sequence<Int>) -> PublishSpans {
        var spans: [(index: Int, span: any Span)] = []
        for index in indices {
            var parent = ServiceContext.topLevel
            if let headers = requests[index].message.properties.headers {
                tracer.extract(headers, into: &parent, using: AMQPHeaderExtractor())
            }
            spans.append((index, Self.startPublishSpan(&requests[index], parent: parent, tracer: tracer)))
        }
        return PublishSpans(spans: spans)
    }

    /// Starts the producer span of one publish, child of `parent`, and writes its context into the
    /// message's headers (replacing any there), so the receiver's consumer span becomes its child.
    static func startPublishSpan(_ request: inout PublishRequest, parent: ServiceContext, tracer: any Tracer) -> any Span {
        // The default exchange routes to the queue named by the routing key: name that queue.
        let destination = request.exchange.isEmpty ? request.routingKey : request.exchange
        let span = tracer.startSpan("publish \(destination)", context: parent, ofKind: .producer)
        span.updateAttributes { [request] attributes in
            attributes["messaging.system"] = "rabbitmq"
            attributes["messaging.operation.type"] = "send"
            attributes["messaging.operation.name"] = "publish"
            attributes["messaging.destination.name"] = destination
            attributes["messaging.rabbitmq.destination.routing_key"] = request.routingKey
            attributes["messaging.message.body.size"] = request.message.body.count
            describe(message: request.message.properties, into: &attributes)
        }
        var headers = request.message.properties.headers ?? [:]
        tracer.inject(span.context, into: &headers, using: AMQPHeaderInjector())
        request.message.properties.headers = headers
        return span
    }

    struct PublishSpans {
        var spans: [(index: Int, span: any Span)]

        /// Ends the spans; a message the broker did not confirm gets an error status with the outcome.
        func end(_ outcomes: [PublishOutcome]) {
            for (index, span) in spans {
                if !outcomes[index].isConfirmed {
                    span.setStatus(SpanStatus(code: .error, message: "not confirmed: \(outcomes[index])"))
                }
                span.end()
            }
        }
    }

    private static func describe(message properties: BasicProperties, into attributes: inout SpanAttributes) {
        if let id = properties.messageId { attributes["messaging.message.id"] = id }
        if let correlationId = properties.correlationId { attributes["messaging.message.conversation_id"] = correlationId }
        if let type = properties.type { attributes["saga.message_type"] = type }
    }
}
