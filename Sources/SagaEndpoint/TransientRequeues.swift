import Synchronization

/// Messages this process retried for a transient reason (a busy, full or corrupt database, a version
/// conflict) or because their outgoing messages or error-queue copy were not confirmed, by id, with how
/// often. Such deliveries are kept in the process and processed again (`HeldDeliveries`), which uses the
/// excuse up; it is there for the broker's redelivery when the kept copy could not be processed again (its
/// channel closed, or the endpoint stopped and handed it back), and for due rows, which stay due. Their
/// redelivery count was committed before they were processed, and the failure rolled back only the
/// processing: so every such requeue made the message look like one that keeps crashing the process, and
/// after `maxDeliveries` of them it went to the error queue as a PoisonMessage. In memory: a process that
/// dies while handling the redelivery counts it at the next start.
final class TransientRequeues: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let limit: Int

    init(limit: Int = 100_000) {
        self.limit = limit
    }

    func insert(_ id: String) {
        counts.withLock { counts in
            // Ids of messages that never came back (another consumer took them) must not pile up; losing
            // the rest only counts their next delivery, as before.
            if counts.count >= limit { counts.removeAll() }
            counts[id, default: 0] += 1
        }
    }

    /// Messages settled otherwise than by a transient requeue: their excuses are spent. Without this, the
    /// excuses of messages that were then settled piled up until the limit wiped every entry, also those of
    /// messages still being requeued, which then looked like crash loops.
    func forget(_ ids: some Sequence<String>) {
        counts.withLock { counts in
            guard !counts.isEmpty else { return }
            for id in ids { counts.removeValue(forKey: id) }
        }
    }

    /// For a delivery counted in the store: whether it follows a transient requeue (which it then uses up).
    func take(_ id: String) -> Bool {
        counts.withLock { counts in
            guard let count = counts[id] else { return false }
            counts[id] = count > 1 ? count - 1 : nil
            return true
        }
    }
}
