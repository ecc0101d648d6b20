/// Publisher-confirm bookkeeping for one confirm-mode channel.
///
/// rabbitmq-c 0.11 has no confirm API, so the client numbers its publishes itself (the broker counts
/// from 1 after confirm.select) and matches basic.ack / basic.nack (with `multiple`) to them. A
/// basic.return (an unroutable mandatory publish) arrives before the ack of the same publish and carries
/// no sequence number, so it is matched to the oldest unconfirmed publish with the same exchange,
/// routing key and message id.
struct ConfirmTracker {
    private struct Pending {
        var batch: Int
        var index: Int
        var exchange: String
        var routingKey: String
        var messageId: String?
        var returned: (code: UInt16, text: String)?
    }

    private final class Batch {
        var outcomes: [PublishOutcome?]
        var remaining: Int
        let continuation: CheckedContinuation<[PublishOutcome], Never>

        init(count: Int, continuation: CheckedContinuation<[PublishOutcome], Never>) {
            outcomes = Array(repeating: nil, count: count)
            remaining = count
            self.continuation = continuation
        }
    }

    private(set) var nextSequence: UInt64 = 1
    private var lowestPending: UInt64 = 1
    private var pending: [UInt64: Pending] = [:]
    private var batches: [Int: Batch] = [:]
    private var nextBatch = 0

    var pendingCount: Int { pending.count }

    /// Starts a batch of `count` publishes whose outcomes are delivered together.
    mutating func beginBatch(count: Int, continuation: CheckedContinuation<[PublishOutcome], Never>) -> Int {
        nextBatch += 1
        batches[nextBatch] = Batch(count: count, continuation: continuation)
        return nextBatch
    }

    /// Records a publish just sent on the channel.
    mutating func sent(batch: Int, index: Int, exchange: String, routingKey: String, messageId: String?) {
        pending[nextSequence] = Pending(batch: batch, index: index, exchange: exchange, routingKey: routingKey,
                                        messageId: messageId)
        nextSequence += 1
    }

    /// Settles one publish of a batch without the broker (it was never sent).
    mutating func settleUnsent(batch: Int, index: Int, _ outcome: PublishOutcome) {
        settle(batch: batch, index: index, outcome)
    }

    mutating func acknowledged(_ tag: UInt64, multiple: Bool) {
        resolve(tag, multiple: multiple) { pending in
            pending.returned.map { .returned(replyCode: $0.code, replyText: $0.text) } ?? .confirmed
        }
    }

    mutating func negativelyAcknowledged(_ tag: UInt64, multiple: Bool) {
        resolve(tag, multiple: multiple) { _ in .nacked }
    }

    mutating func returned(exchange: String, routingKey: String, messageId: String?, code: UInt16, text: String) {
        var sequence = lowestPending
        while sequence < nextSequence {
            if var entry = pending[sequence], entry.returned == nil, entry.exchange == exchange,
               entry.routingKey == routingKey, entry.messageId == messageId {
                entry.returned = (code, text)
                pending[sequence] = entry
                return
            }
            sequence += 1
        }
    }

    /// The channel or connection failed: every unconfirmed publish fails, and the next confirm-mode
    /// channel counts from 1 again.
    mutating func failAll(_ error: AMQPError) {
        let entries = pending
        pending.removeAll()
        for (_, entry) in entries.sorted(by: { $0.key < $1.key }) {
            settle(batch: entry.batch, index: entry.index, .failed(error))
        }
        nextSequence = 1
        lowestPending = 1
    }

    private mutating func resolve(_ tag: UInt64, multiple: Bool, _ outcome: (Pending) -> PublishOutcome) {
        if multiple {
            var sequence = lowestPending
            while sequence <= tag {
                if let entry = pending.removeValue(forKey: sequence) {
                    settle(batch: entry.batch, index: entry.index, outcome(entry))
                }
                sequence += 1
            }
        } else if let entry = pending.removeValue(forKey: tag) {
            settle(batch: entry.batch, index: entry.index, outcome(entry))
        }
        while lowestPending < nextSequence, pending[lowestPending] == nil {
            lowestPending += 1
        }
    }

    private mutating func settle(batch id: Int, index: Int, _ outcome: PublishOutcome) {
        guard let batch = batches[id], batch.outcomes[index] == nil else { return }
        batch.outcomes[index] = outcome
        batch.remaining -= 1
        if batch.remaining == 0 {
            batches.removeValue(forKey: id)
            batch.continuation.resume(returning: batch.outcomes.map { $0! })
        }
    }
}
