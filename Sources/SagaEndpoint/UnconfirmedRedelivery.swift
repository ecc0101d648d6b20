import AMQPTransport
import Synchronization

/// Deliveries whose outgoing messages the broker did not confirm (an error-queue copy returned or nacked,
/// publishes lost with the connection; an outbox row returned or nacked no longer holds its delivery: it
/// is safe in the outbox) go back to their queue, to be published again when they come back. Handed
/// back at once, a message whose event had nowhere to go came straight back and round again, about 700
/// times a second, each time with a transaction and a warning. So each such delivery is held, unsettled,
/// for a delay that doubles per message id while its outgoing messages keep failing (100 ms up to 5 s),
/// and only then handed back; the other messages go on meanwhile, nothing waits for the delay.
///
/// A held delivery must not be acknowledged by a later batch's `multiple` ack (that would settle it
/// instead of handing it back), so while any delivery of a channel opening is held, acks on that opening
/// go one by one (`AckPlan`). When the endpoint stops, held deliveries are handed back at once, on the
/// connection they came on, rather than left to the close (and no task outlives the endpoint).
final class UnconfirmedRedelivery: Sendable {
    private struct State {
        var held: Set<DeliveryTag> = []
        /// The waits scheduled by `schedule`, until they have handed their delivery back.
        var handBacks: [DeliveryTag: Task<Void, Never>] = [:]
        /// Consecutive failed rounds per incoming message id.
        var failures: [String: Int] = [:]
    }

    private let state = Mutex(State())
    /// The doubling delays, without jitter: a message's rounds follow each other anyway.
    private let policy: RecoveryPolicy

    init(initialDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(5)) {
        policy = RecoveryPolicy(initialDelay: initialDelay, maximumDelay: maximumDelay, jitter: 0)
    }

    /// Holds `tag` and returns how long to wait before handing it back.
    func hold(_ tag: DeliveryTag, messageId: String) -> Duration {
        let failures = state.withLock { state in
            state.held.insert(tag)
            // Bounded: ids whose messages never get through (a route that stays missing) are forgotten in
            // bulk rather than kept for ever; they start again from the shortest delay.
            if state.failures.count >= 10_000 { state.failures.removeAll() }
            defer { state.failures[messageId, default: 0] += 1 }
            return state.failures[messageId, default: 0]
        }
        return policy.delay(attempt: failures)
    }

    /// Hands `tag` back after `delay`, or sooner when `handBackAll` is called.
    func schedule(_ tag: DeliveryTag, after delay: Duration, handBack: @escaping @Sendable () async -> Void) {
        // Recorded under the lock that `release` takes, so a wait that ends at once still finds its entry.
        state.withLock { state in
            state.handBacks[tag] = Task {
                try? await Task.sleep(for: delay)  // ends early when cancelled by `handBackAll`
                await handBack()
                self.release(tag)
            }
        }
    }

    /// Hands back every held delivery now instead of after its delay, and returns once that is done: the
    /// endpoint is stopping and is about to close the connection they came on.
    func handBackAll() async {
        let waits = state.withLock { Array($0.handBacks.values) }
        for wait in waits { wait.cancel() }
        for wait in waits { await wait.value }
    }

    /// The delivery was handed back (or can no longer be: its channel is gone).
    func release(_ tag: DeliveryTag) {
        state.withLock { state in
            state.held.remove(tag)
            state.handBacks.removeValue(forKey: tag)
        }
    }

    /// The message's outgoing messages were confirmed: its next failure starts from the shortest delay.
    func succeeded(_ messageIds: [String]) {
        state.withLock { state in
            guard !state.failures.isEmpty else { return }
            for id in messageIds { state.failures.removeValue(forKey: id) }
        }
    }

    /// The deliveries held now.
    var held: [DeliveryTag] { state.withLock { Array($0.held) } }
}
