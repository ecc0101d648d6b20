import AMQPTransport
import Synchronization

/// Deliveries that must be processed again are kept in the process, unacknowledged, and processed again
/// from the endpoint's own intake after a delay, instead of being handed back to their queue: an immediate
/// retry of a failed handler (as MassTransit retries in process), a transient failure (a locked, full or
/// unwritable database, a version conflict, a message that could not be parked), and outgoing messages the
/// broker did not confirm (an error-queue copy returned or nacked,
/// publishes lost with the connection; an outbox row returned or nacked does not hold its delivery: it is
/// safe in the outbox).
///
/// Handed back (basic.nack with requeue), every round counted as a delivery in a quorum queue, and past
/// its `delivery-limit` (RabbitMQ 4 gives every quorum queue 20) the broker dropped the message, or
/// dead-lettered it, without a word: a full error queue or an unwritable database lost messages after
/// about a minute. Kept here, the broker sees one delivery; it keeps its prefetch slot (so while the
/// database is down the consumer takes nothing new) and its delivery tag, which is acknowledged once a
/// later round has committed and its outgoing messages are confirmed.
///
/// The delay for outgoing messages not confirmed doubles per message id (per delivery for a message without
/// one, rejected unread) while they keep failing (100 ms up to 5 s): processed again at once, a message whose
/// event had nowhere to go came round about 700 times a second, each time with a transaction and a warning.
/// A transient failure waits for the batch's pause (`TransientBackoff`) and is then processed again at once,
/// as is an immediate retry. The other messages go on meanwhile.
///
/// A delivery is held from the batch that keeps it until a later batch settles it (`release`), including
/// while it waits in the work queue: no `multiple` ack may cover it meanwhile (`AckPlan`), it is not
/// settled. Its delivery is not counted again as a possible crash (`isHeld`): it was not redelivered; it
/// keeps the count its first processing found (`deliveries(of:)`).
/// A held delivery whose channel was closed or whose connection was lost meanwhile is dropped: the broker
/// has requeued it and delivers it again. One kept for `maximumHold` is handed back (`processAgain`): the
/// broker's `consumer_timeout` would close its channel. When the endpoint stops, held deliveries are handed back
/// on the connection they came on, rather than left to the close (and no task outlives the endpoint), but only
/// once the consumers are cancelled (`handBackAll`): handed back while its consumer was still active, a
/// delivery came straight back to this endpoint, one more round counted by a quorum queue.
final class HeldDeliveries: Sendable {
    private struct State {
        /// Kept and not settled yet (waiting for their delay, or back in the work queue): the delivery count
        /// their processing found (0: not counted, a first delivery), when each was first kept
        /// (`heldSince`), and, for a message without a message id, its rounds whose outgoing messages were
        /// not confirmed (`failures` counts the others).
        var held: [DeliveryTag: (deliveries: Int, since: ContinuousClock.Instant, rounds: Int)] = [:]
        /// The waits scheduled by `schedule`, until they have put their delivery back or handed it back;
        /// numbered, so that a wait that ends does not remove the next one of its delivery (put back, the
        /// delivery can be processed and held again before the wait that put it back has ended).
        var waits: [DeliveryTag: (number: UInt64, task: Task<Void, Never>)] = [:]
        var scheduled: UInt64 = 0
        /// Consecutive rounds per incoming message id whose outgoing messages were not confirmed.
        var failures: [String: Int] = [:]

        mutating func keep(_ tag: DeliveryTag, deliveries: Int?) {
            held[tag] = (deliveries ?? 0, held[tag]?.since ?? .now, held[tag]?.rounds ?? 0)
        }
    }

    private let state = Mutex(State())
    /// The doubling delays, without jitter: a message's rounds follow each other anyway.
    private let policy: RecoveryPolicy

    init(initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(5)) {
        policy = RecoveryPolicy(initialDelay: initialDelay, maximumDelay: maximumDelay, jitter: 0)
    }

    /// Holds `tag`, whose outgoing messages were not confirmed, and returns how long to wait before it is
    /// processed again. `deliveries`: its delivery count (`deliveries(of:)`).
    func hold(_ tag: DeliveryTag, messageId: String, deliveries: Int? = nil) -> Duration {
        let failures = state.withLock { state in
            state.keep(tag, deliveries: deliveries)
            // A message without a message id (rejected unread, `MissingMessageId`, its error-queue copy not
            // confirmed) is counted on its held delivery: under the id "" all of them shared one count.
            if messageId.isEmpty {
                defer { state.held[tag]?.rounds += 1 }
                return state.held[tag]?.rounds ?? 0
            }
            // Bounded: ids whose messages never get through (a route that stays missing) are forgotten in
            // bulk rather than kept for ever; they start again from the shortest delay.
            if state.failures.count >= 10_000 { state.failures.removeAll() }
            defer { state.failures[messageId, default: 0] += 1 }
            return state.failures[messageId, default: 0]
        }
        return policy.delay(attempt: failures)
    }

    /// Holds `tag` (a transient failure: its batch has paused already).
    func hold(_ tag: DeliveryTag, deliveries: Int?) {
        state.withLock { $0.keep(tag, deliveries: deliveries) }
    }

    /// After `delay`, runs `retry` (which puts the delivery back into the intake, or leaves it held when the
    /// endpoint is stopping); nothing when `handBackAll` comes first. The tag stays held either way until
    /// `release`.
    func schedule(_ tag: DeliveryTag, after delay: Duration, retry: @escaping @Sendable () async -> Void) {
        // Recorded under the lock that `ended` takes, so a wait that ends at once still finds its entry.
        state.withLock { state in
            state.scheduled += 1
            let number = state.scheduled
            state.waits[tag] = (number, Task {
                try? await Task.sleep(for: delay)  // ends early when cancelled by `handBackAll`
                if !Task.isCancelled { await retry() }
                self.ended(tag, number: number)
            })
        }
    }

    /// Ends the waits and hands back (`handBack`) every delivery still held, and returns once that is done:
    /// the endpoint has stopped its batches and cancelled its consumers, and is about to close the connection
    /// they came on. Not before the cancel: the broker would deliver them straight back to this endpoint.
    func handBackAll(_ handBack: @Sendable (DeliveryTag) async -> Void) async {
        let waits = state.withLock { $0.waits.values.map(\.task) }
        for wait in waits { wait.cancel() }
        for wait in waits { await wait.value }
        for tag in held { await handBack(tag) }
    }

    private func ended(_ tag: DeliveryTag, number: UInt64) {
        state.withLock { state in
            if state.waits[tag]?.number == number { state.waits.removeValue(forKey: tag) }
        }
    }

    /// The deliveries were settled (acknowledged, handed back) or can no longer be (their channel is gone).
    func release(_ tags: some Sequence<DeliveryTag>) {
        state.withLock { state in
            guard !state.held.isEmpty else { return }
            for tag in tags { state.held.removeValue(forKey: tag) }
        }
    }

    /// The message's outgoing messages were confirmed: its next failure starts from the shortest delay.
    func succeeded(_ messageIds: [String]) {
        state.withLock { state in
            guard !state.failures.isEmpty else { return }
            for id in messageIds { state.failures.removeValue(forKey: id) }
        }
    }

    /// Whether `tag` is held: a delivery with such a tag in a batch is one this process put back, not a
    /// delivery from the broker.
    func isHeld(_ tag: DeliveryTag) -> Bool { state.withLock { $0.held[tag] != nil } }

    /// The delivery count the held delivery's processing found, if it was counted: processed again, it
    /// keeps it rather than counting again (a poison message stays diverted, its handler does not run).
    func deliveries(of tag: DeliveryTag) -> Int? {
        state.withLock { state in state.held[tag].flatMap { $0.deliveries > 0 ? $0.deliveries : nil } }
    }

    /// When `tag` was first kept, if it is held: kept round after round, it keeps its first time.
    func heldSince(_ tag: DeliveryTag) -> ContinuousClock.Instant? { state.withLock { $0.held[tag]?.since } }

    /// The deliveries held now.
    var held: [DeliveryTag] { state.withLock { Array($0.held.keys) } }

    /// Whether none is held: the usual case, checked once per batch rather than once per delivery.
    var isEmpty: Bool { state.withLock { $0.held.isEmpty } }
}
