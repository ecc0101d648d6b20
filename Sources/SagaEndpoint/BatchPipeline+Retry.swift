import AMQPTransport
import Logging

// Processing a delivery again: the transient failures' pause, and a held delivery (`HeldDeliveries`) back
// into the endpoint's intake, or, when that cannot be, back to its queue (kept for too long, or once the
// endpoint has stopped and cancelled its consumers) or left to the broker (its channel is gone).
extension BatchPipeline {
    /// The transient pause, cut short by a graceful shutdown. The pause keeps deliveries processed again
    /// from coming straight back in a hot loop; once the consumers are cancelled none can come back here, and
    /// each batch in flight waiting out its pause (up to 5 s, one batch after the other) held the shutdown
    /// up: 300 deliveries during a database outage took 14 s to hand back, and the README's remedy for a
    /// replaced database file is a restart.
    func pauseUnlessStopping(_ delay: Duration) async {
        await Self.pause(delay, unless: { health.stopping.load(ordering: .relaxed) })
    }

    /// `delay`, in steps of 50 ms so that `stopping` is seen, or less. Cut short too when the task is
    /// cancelled (the endpoint's cancellation ends the batches in flight, `FinishingTasks`, without a
    /// graceful shutdown): `Task.sleep` then throws at once, and the loop spun through what was left of the
    /// pause, up to 5 s of a core.
    static func pause(_ delay: Duration, unless stopping: () -> Bool,
                      sleep: (Duration) async throws -> Void = { try await Task.sleep(for: $0) }) async {
        let end = ContinuousClock.now + delay
        while !stopping() {
            let left = end - ContinuousClock.now
            guard left > .zero else { return }
            do { try await sleep(min(left, .milliseconds(50))) } catch { return }
        }
    }

    /// Puts `delivery`, held since an earlier batch, back into the intake, to be processed as if it had
    /// just been delivered (but not counted as a redelivery: `divertPoisonMessages`). It goes behind the
    /// deliveries waiting there.
    ///
    /// Not when its channel was closed or its connection lost meanwhile: the broker has requeued it and
    /// delivers it again (processed here too, it would run twice and its ack would fail). The held copy is
    /// dropped; the broker's redelivery uses the excuse its round left (`TransientRequeues`).
    /// Nor once the endpoint is stopping (or its batch loop has ended): it stays held, and is handed back once
    /// the consumers are cancelled (`handBackHeld`). Handed back at once, while its consumer was still active,
    /// it was delivered straight back to this endpoint, round after round until the cancel landed, each round
    /// counted by a quorum queue. Nor once it has been kept for
    /// `maximumHold`: unacknowledged past the broker's `consumer_timeout` (30 min by default), its channel
    /// was closed by the broker, with every other delivery on it (a database locked or an error queue full
    /// for half an hour did that every half hour). Handed back, it comes again (excused as its round left it,
    /// `TransientRequeues`) and is kept anew.
    func processAgain(_ delivery: AMQPDelivery, messageId: String) async {
        if health.stopping.load(ordering: .relaxed) { return }
        if let since = heldDeliveries.heldSince(delivery.tag), ContinuousClock.now - since >= configuration.maximumHold {
            logger.info("message kept unacknowledged for too long; handed back to its queue, to be delivered again",
                        metadata: ["message_id": "\(messageId)", "queue": "\(delivery.queue)",
                                   "maximum_hold": "\(configuration.maximumHold)"])
            await handBack(delivery.tag)
            return
        }
        guard await consumer.canSettle(delivery.tag) else {
            dropStale(delivery, messageId: messageId)
            return
        }
        // The batch loop may have ended (a shutdown, a cancellation) since the check above: then it stays
        // held for `handBackHeld`.
        _ = work.pushUnlessFinished(.delivery(delivery))
    }

    /// Forgets a held delivery whose channel was closed or whose connection was lost: the broker has requeued
    /// it and delivers it again.
    func dropStale(_ delivery: AMQPDelivery, messageId: String) {
        heldDeliveries.release([delivery.tag])
        logger.debug("held delivery dropped: its channel or connection was closed meanwhile, and the broker delivers it again",
                     metadata: ["message_id": "\(messageId)", "queue": "\(delivery.queue)",
                                "delivery_tag": "\(delivery.tag.value)"])
    }

    /// Hands every delivery still held back to its queue, once the endpoint's batches have ended and its
    /// consumers are cancelled (`HeldDeliveries.handBackAll`).
    func handBackHeld() async {
        await heldDeliveries.handBackAll { await handBack($0) }
    }

    /// Hands a held delivery back to its queue (kept for `maximumHold`, or the endpoint has stopped). Its next
    /// delivery, by the broker, uses the excuse its round left (`TransientRequeues`).
    func handBack(_ tag: DeliveryTag) async {
        try? await consumer.nack(tag, requeue: true)
        heldDeliveries.release([tag])
    }
}
