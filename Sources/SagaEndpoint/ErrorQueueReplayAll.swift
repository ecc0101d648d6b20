import AMQPTransport

/// What `ErrorQueueAdmin.replayAll` did.
public struct ErrorQueueReplayAllOutcome: Sendable {
    /// Messages published back to their original queue (and removed from the error queue).
    public var replayed: Int
    /// Further copies of ids replayed in the run, deleted (with `dropRepeats`); without it they stay.
    public var droppedRepeats = 0
    /// Messages the filter did not match (they stay).
    public var unmatched = 0
    /// Messages that could not be replayed, in queue order; they stay in the error queue.
    public var skipped: [ErrorQueueReplayFailure]
    /// The exchanges the broker refused this user the publish to (403, `""` the default exchange, where
    /// copies naming their queue go), in the order met, each once. Every copy refused alike is among
    /// `skipped` (`ErrorQueueReplayFailure.Reason.accessRefused`): for the default exchange, all its copies
    /// (only the first was published); for an event's exchange, its copies under the routing key refused
    /// (only the first of those was published).
    public var refusedExchanges: [String] = []
    /// Consumers the queue had when the run started. Messages they hold unacknowledged were neither
    /// counted nor delivered to the run: they were not replayed, and come back to the queue later.
    public var otherConsumers = 0
}

extension ErrorQueueAdmin {
    /// Replays the messages that were in the queue when it started, each message id once. Against a running
    /// endpoint a replayed message that fails again comes straight back to the queue: it is not part of
    /// this run, and neither is a second copy of an id replayed already (it stays in the queue), so the run
    /// ends instead of replaying the same messages for ever.
    ///
    /// A message that cannot be replayed (`ErrorQueueReplayFailure`: no original queue, or its original
    /// queue refused it) stays in the queue and the run goes on with the next; `onSkip` hears of each as it
    /// happens. A connection failure ends the run (thrown); what it had not replayed stays in the queue. A
    /// publish the broker refuses this user (403) is skipped too, and so is every later copy for the same
    /// exchange (and, for an event's exchange, under the same routing key), unpublished; the others are
    /// replayed (RabbitMQ's permissions are per exchange: a user may publish events to one and not another,
    /// or to no queue but to an exchange; and its topic permissions, per routing key of a topic exchange: one
    /// refused under `sports` may be allowed under `weather`, whose copies were skipped all the same).
    /// Before, the run stopped at the first 403, leaving copies it could have replayed.
    ///
    /// Only the copies `filter` matches are replayed. With `dropRepeats`, a further copy of an id replayed
    /// in this run is deleted instead of left: the endpoint's inbox would drop it as a duplicate once the
    /// first is handled, and if that one fails again its new copy stands for it. (Several copies of one id
    /// come from a command re-sent by its saga to a queue that was missing: each went to the error queue.)
    public func replayAll(filter: ErrorQueueFilter = .all, dropRepeats: Bool = false,
                          onSkip: (ErrorQueueReplayFailure) -> Void = { _ in }) async throws -> ErrorQueueReplayAllOutcome {
        var replayedIds = [String: Int]()   // destination + id -> hash of the body replayed
        var outcome = ErrorQueueReplayAllOutcome(replayed: 0, skipped: [])
        var refused = [String: AMQPError]()   // exchange (+ an event's routing key) -> the broker's 403 for it
        let pass = try await scan().run { delivery in
            let id = delivery.properties.messageId ?? ""
            let entry = ErrorQueueEntry(delivery.message)
            guard filter.isEmpty || filter.matches(entry) else {
                outcome.unmatched += 1
                return .keep
            }
            // A message without id cannot be told from another; the bound alone keeps the run finite. A copy
            // is a repeat only for the same destination: the queue, or an event's exchange and routing key
            // (all event copies named no queue, so one for another exchange was dropped as a repeat).
            let key = [entry.originalQueue ?? "", entry.originalExchange ?? "", entry.originalRoutingKey ?? "", id]
                .joined(separator: "\u{0}")
            if !id.isEmpty, let body = replayedIds[key] {
                guard dropRepeats, body == delivery.message.body.hashValue else { return .keep }
                outcome.droppedRepeats += 1
                return .delete
            }
            // An event's copy under its routing key too: topic permissions refuse per routing key.
            let refusal = entry.replayExchange.map { $0.isEmpty ? "" : $0 + "\u{0}" + (entry.originalRoutingKey ?? "") }
            if let refusal, let error = refused[refusal] {
                let failure = ErrorQueueReplayFailure(entry, errorQueue: errorQueue, reason: .accessRefused(error))
                outcome.skipped.append(failure)
                onSkip(failure)
                return .keep
            }
            do {
                try await republish(delivery)
            } catch let failure as ErrorQueueReplayFailure {
                outcome.skipped.append(failure)
                onSkip(failure)
                if case .accessRefused(let error) = failure.reason, let exchange = entry.replayExchange,
                   let refusal {
                    refused[refusal] = error
                    if !outcome.refusedExchanges.contains(exchange) { outcome.refusedExchanges.append(exchange) }
                }
                return .keep
            }
            replayedIds[key] = delivery.message.body.hashValue
            outcome.replayed += 1
            return .remove
        }
        outcome.otherConsumers = pass.otherConsumers
        return outcome
    }
}
