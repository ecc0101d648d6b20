import Metrics

/// The endpoint's counters and timers, named after Prometheus conventions. Which backend receives them
/// is the application's choice (`MetricsSystem.bootstrap`); without one they cost next to nothing.
struct EndpointMetrics: Sendable {
    let received = Counter(label: "saga_messages_received_total")
    let processed = Counter(label: "saga_messages_processed_total")
    let failed = Counter(label: "saga_messages_failed_total")
    let retried = Counter(label: "saga_messages_retried_total")
    let deduplicated = Counter(label: "saga_messages_deduplicated_total")
    let errorQueued = Counter(label: "saga_messages_error_queued_total")
    let rejected = Counter(label: "saga_messages_rejected_total")
    let sagasStarted = Counter(label: "saga_sagas_started_total")
    let sagasCompleted = Counter(label: "saga_sagas_completed_total")
    let sagasNotFound = Counter(label: "saga_sagas_not_found_total")
    let timeoutsFired = Counter(label: "saga_timeouts_fired_total")
    let published = Counter(label: "saga_messages_published_total")
    let batchDuration = Timer(label: "saga_batch_duration_seconds")
    let commitDuration = Timer(label: "saga_commit_duration_seconds")
    let publishDuration = Timer(label: "saga_publish_confirm_duration_seconds")
    let batchSize = Recorder(label: "saga_batch_size")
}

extension Timer {
    func record(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
