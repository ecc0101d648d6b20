import Metrics

/// The endpoint's counters and timers, named after Prometheus conventions. Which backend receives them
/// is the application's choice (`MetricsSystem.bootstrap`, or a factory passed to `SagaEndpoint`);
/// without one they cost next to nothing.
struct EndpointMetrics: Sendable {
    let received: Counter
    let processed: Counter
    let failed: Counter
    let retried: Counter
    let deduplicated: Counter
    let errorQueued: Counter
    let rejected: Counter
    let sagasStarted: Counter
    let sagasCompleted: Counter
    /// Messages handled by a saga that found no live instance (whatever the not-found policy).
    let sagasNotFound: Counter
    let timeoutsFired: Counter
    let published: Counter
    /// Outgoing messages the broker did not confirm (returned for want of a queue, nacked, or the
    /// connection failed): each is sent again later, and its incoming message waits (not for a returned
    /// one, which stays in the outbox).
    let unconfirmed: Counter
    /// Outgoing commands and replies moved to the error queue after the broker kept returning them for
    /// `unroutableTimeout` (no queue of that name).
    let unroutableErrorQueued: Counter
    /// Outgoing messages moved to the error queue after the broker kept refusing them (basic.nack, a full
    /// queue) for `refusedTimeout`.
    let refusedErrorQueued: Counter
    let batchDuration: Timer
    let commitDuration: Timer
    /// Publish and broker confirm of a batch's outgoing messages, together (one round trip).
    let publishDuration: Timer
    /// One message's handlers: its sagas (with loading and saving their state) or its stateless handlers.
    let handlerDuration: Timer
    /// Messages whose saga handlers ran ahead of the transaction on states that changed before it
    /// committed (the previous batch or another process wrote them), so they ran again inside it.
    let handlersRerun: Counter
    let batchSize: Recorder

    init(factory: any MetricsFactory = MetricsSystem.factory) {
        received = Counter(label: "saga_messages_received_total", factory: factory)
        processed = Counter(label: "saga_messages_processed_total", factory: factory)
        failed = Counter(label: "saga_messages_failed_total", factory: factory)
        retried = Counter(label: "saga_messages_retried_total", factory: factory)
        deduplicated = Counter(label: "saga_messages_deduplicated_total", factory: factory)
        errorQueued = Counter(label: "saga_messages_error_queued_total", factory: factory)
        rejected = Counter(label: "saga_messages_rejected_total", factory: factory)
        sagasStarted = Counter(label: "saga_sagas_started_total", factory: factory)
        sagasCompleted = Counter(label: "saga_sagas_completed_total", factory: factory)
        sagasNotFound = Counter(label: "saga_sagas_not_found_total", factory: factory)
        timeoutsFired = Counter(label: "saga_timeouts_fired_total", factory: factory)
        published = Counter(label: "saga_messages_published_total", factory: factory)
        unconfirmed = Counter(label: "saga_messages_unconfirmed_total", factory: factory)
        unroutableErrorQueued = Counter(label: "saga_outgoing_unroutable_error_queued_total", factory: factory)
        refusedErrorQueued = Counter(label: "saga_outgoing_refused_error_queued_total", factory: factory)
        batchDuration = Timer(label: "saga_batch_duration_seconds", factory: factory)
        commitDuration = Timer(label: "saga_commit_duration_seconds", factory: factory)
        publishDuration = Timer(label: "saga_publish_confirm_duration_seconds", factory: factory)
        handlerDuration = Timer(label: "saga_handler_duration_seconds", factory: factory)
        handlersRerun = Counter(label: "saga_handlers_rerun_total", factory: factory)
        batchSize = Recorder(label: "saga_batch_size", factory: factory)
    }
}

extension Timer {
    func record(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
