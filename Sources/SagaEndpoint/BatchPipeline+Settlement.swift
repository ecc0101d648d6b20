import AMQPTransport
import Logging

// The last stage of a batch: acknowledging what is done and keeping what must be tried again.
extension BatchPipeline {
    /// Acknowledges what is done; keeps what must be tried again (`HeldDeliveries`): nothing is handed
    /// back to its queue, which a quorum queue would count toward its `delivery-limit`. Per channel opening, when every delivery of the batch is acked, one `multiple` ack
    /// covers them all (earlier batches are settled already; see `AckPlan`). Returns the message ids of the
    /// deliveries kept because their outgoing messages were not confirmed.
    ///
    /// An outbox row the broker returned (no queue of that name: a reply to a requester that is gone, a
    /// command to a queue not declared) does not hold its delivery: the row is safe in the outbox, which
    /// housekeeping sends again and, past `unroutableTimeout`, moves to the error queue. Held and handed
    /// back to the head of its queue, such deliveries took every prefetch slot once there were more of
    /// them than `prefetch`, and nothing behind them was delivered, for ever. The same holds for a row the
    /// broker refused (basic.nack: a queue full with `reject-publish`, set by an operator's policy): held,
    /// once `prefetch` deliveries had a command for the full queue, messages for every other queue stalled
    /// behind them until it had room. An error-queue copy the broker does not confirm still holds its
    /// delivery: it is stored nowhere else.
    func settle(_ entries: [Entry], outcomes: [PublishOutcome], requests: [PublishRequest],
                outboxPublishes: Set<Int>, multipleAcks: Bool) async -> [String] {
        var acks: [DeliveryTag] = []
        // Kept in the process and processed again: after a doubling delay when their outgoing messages
        // were not confirmed, at once for a transient failure (the batch paused already) and an immediate
        // retry.
        var kept: [(delivery: AMQPDelivery, messageId: String, delay: Duration?)] = []
        var confirmedIds: [String] = []
        var unconfirmedPublishes = UnconfirmedPublishes()
        var leftToTheOutbox = UnconfirmedPublishes()
        var refusedToTheOutbox = UnconfirmedPublishes()
        for entry in entries {
            guard let delivery = entry.delivery else { continue }
            var settle = entry.settle
            var unconfirmed = false
            for index in entry.publishes where !outcomes[index].isConfirmed {
                if Self.staysInOutbox(outcomes[index], publish: index, outboxPublishes: outboxPublishes) {
                    if case .returned = outcomes[index] {
                        leftToTheOutbox.add(requests[index], outcome: outcomes[index])
                    } else {
                        refusedToTheOutbox.add(requests[index], outcome: outcomes[index])
                    }
                    continue
                }
                settle = .requeue
                unconfirmed = true
                unconfirmedPublishes.add(requests[index], outcome: outcomes[index])
            }
            let messageId = entry.incoming?.messageId ?? delivery.properties.messageId ?? ""
            switch settle {
            case .ack:
                acks.append(delivery.tag)
                if !entry.publishes.isEmpty { confirmedIds.append(messageId) }
            case .requeue where unconfirmed && entry.settle == .ack:
                let delay = heldDeliveries.hold(delivery.tag, messageId: messageId, deliveries: entry.deliveries)
                kept.append((delivery, messageId, delay))
            case .requeue:
                // A transient failure, or an immediate retry: processed again in process, as MassTransit
                // retries, and not counted by the broker (a handler failing with its 3 immediate retries on a
                // quorum queue with a limit of 2 was dropped by the broker before its error copy).
                heldDeliveries.hold(delivery.tag, deliveries: entry.deliveries)
                kept.append((delivery, messageId, nil))
            }
        }
        warn(unconfirmedPublishes, "outgoing messages not confirmed; their incoming messages are kept and processed again after a delay")
        warn(leftToTheOutbox, "outgoing messages returned by the broker (no queue of that name): kept in the outbox, sent again, and moved to the error queue if that lasts",
             extra: ["unroutable_timeout": "\(configuration.unroutableTimeout)"])
        warn(refusedToTheOutbox, "outgoing messages refused by the broker (basic.nack: a full queue with reject-publish?): kept in the outbox, sent again, and moved to the error queue if that lasts",
             extra: ["resent_every": "\(configuration.outboxRedispatchDelay)",
                     "refused_timeout": "\(configuration.refusedTimeout)"])
        heldDeliveries.succeeded(confirmedIds)
        // This batch's deliveries that were held (processed again in process) are settled now, unless kept
        // once more.
        let keptTags = Set(kept.map(\.delivery.tag))
        heldDeliveries.release(entries.lazy.compactMap(\.delivery?.tag).filter { !keptTags.contains($0) })
        // Each ack on its own: one that is no longer possible (its channel was reopened) must not keep
        // the others from going out. No `multiple` ack on an opening with a held delivery, this batch's or
        // an earlier one's (waiting, or back in the work queue): it would acknowledge that delivery before
        // it is processed.
        for ack in AckPlan.acks(acks, requeued: heldDeliveries.held, multipleAcks: multipleAcks) {
            do {
                try await consumer.ack(ack.tag, multiple: ack.multiple)
            } catch {
                // One line per second at most (with the count since the last): after a connection loss every
                // delivery of the batches in flight fails here, hundreds of lines per loss under a backlog.
                let code = (error as? AMQPError)?.code.name ?? "other"
                guard let count = unconfirmedWarnings.admit("ack\u{0}\(code)", messages: 1) else { continue }
                // Named like every record about a message (a `multiple` ack names its last delivery).
                let entry = entries.first { $0.delivery?.tag == ack.tag }
                logger.info("ack not possible; the broker will redeliver", metadata: (entry.map(metadata) ?? [:]).merging([
                    "error": "\(error)", "delivery_tag": "\(ack.tag.value)", "multiple": "\(ack.multiple)",
                    "count": "\(count)"]) { $1 })
            }
        }
        for held in kept {
            let delivery = held.delivery
            heldDeliveries.schedule(delivery.tag, after: held.delay ?? .zero,
                                    retry: { await processAgain(delivery, messageId: held.messageId) })
        }
        return kept.filter { $0.delay != nil }.map(\.messageId).filter { !$0.isEmpty }
    }

    /// One warning per group of unconfirmed publishes, throttled per destination and outcome.
    private func warn(_ publishes: UnconfirmedPublishes, _ message: Logger.Message, extra: Logger.Metadata = [:]) {
        for group in publishes.groups {
            guard let count = unconfirmedWarnings.admit(
                "\(group.exchange)\u{0}\(group.routingKey)\u{0}\(group.outcome)", messages: group.count) else { continue }
            logger.warning(message, metadata: extra.merging([
                "count": "\(count)", "message_id": "\(group.messageId)", "message_type": "\(group.messageType)",
                "exchange": "\(group.exchange)", "routing_key": "\(group.routingKey)",
                "outcome": "\(group.outcome)"]) { $1 })
        }
    }

    /// Whether an unconfirmed publish is left to the outbox rather than holding its delivery: an outbox row
    /// the broker returned (no queue) or refused (basic.nack, a full queue). Its delivery is acknowledged.
    static func staysInOutbox(_ outcome: PublishOutcome, publish index: Int, outboxPublishes: Set<Int>) -> Bool {
        guard outboxPublishes.contains(index) else { return false }
        switch outcome {
        case .returned, .nacked: return true
        case .confirmed, .failed: return false
        }
    }
}
