/// Publisher-confirm bookkeeping for one confirm-mode channel.
///
/// rabbitmq-c 0.11 has no confirm API, so the client numbers its publishes itself (the broker counts
/// from 1 after confirm.select) and matches basic.ack / basic.nack (with `multiple`) to them. A
/// basic.return (an unroutable mandatory publish) carries no sequence number, and it may overtake the
/// acks of earlier publishes that were routed (their acks wait for the queues). RabbitMQ sends it while
/// handling that publish, and the acks it sends right after (before it handles the next publish) settle
/// that publish, the newest it has seen. Those acks also carry the confirms its queues sent meanwhile,
/// coalesced: first one ack with `multiple` for those below the oldest unconfirmed publish, then the others
/// one by one, the returned publish's last; an ack thus names the returned publish by its own tag, never as
/// one of the lower publishes a `multiple` also settles. So a return is held until an ack or nack whose tag
/// is a publish with the same exchange, routing key, properties and body (mandatory, not yet returned);
/// failing that (a property that does not survive the trip unchanged, such as a NaN header), with the
/// same destination. Matching by content alone (the oldest
/// identical one) gave the return of a publish to an identical earlier one still waiting for its queue
/// (the binding was removed in between): the dropped publish was then reported confirmed.
///
/// Unconfirmed publishes are kept in sequence order in an array (sequence numbers are consecutive), so
/// recording and settling one costs no hashing.
struct ConfirmTracker {
    private struct Pending {
        /// The batch, which also holds the request (to recognise a basic.return by its content).
        var batch: ConfirmBatch
        var index: Int
        var returned: (code: UInt16, text: String)?

        var request: PublishRequest { batch.requests[index] }
    }

    /// A basic.return not yet given to a publish: that happens when the ack after it comes.
    private struct OpenReturn {
        var exchange: String
        var routingKey: String
        var message: AMQPMessage
        var code: UInt16
        var text: String
    }

    private var openReturns: [OpenReturn] = []

    /// Publishes in sequence order from `head` on; nil once settled (acks may come one by one, out of
    /// the array's order).
    private var pending: [Pending?] = []
    /// The index in `pending` of the oldest entry still kept (everything before it is settled).
    private var head = 0
    /// The sequence number of `pending[head]`.
    private var headSequence: UInt64 = 1

    /// The sequence number the next publish gets.
    var nextSequence: UInt64 { headSequence + UInt64(pending.count - head) }

    /// Publishes sent and not confirmed yet.
    private(set) var pendingCount = 0

    /// Starts a batch of publishes whose outcomes are delivered together.
    func beginBatch(_ requests: [PublishRequest], continuation: CheckedContinuation<[PublishOutcome], Never>) -> ConfirmBatch {
        ConfirmBatch(requests: requests, continuation: continuation)
    }

    /// Records that publish `index` of `batch` was just sent on the channel.
    mutating func sent(batch: ConfirmBatch, index: Int) {
        pending.append(Pending(batch: batch, index: index))
        pendingCount += 1
    }

    /// Settles one publish of a batch without the broker (it was never sent).
    func settleUnsent(batch: ConfirmBatch, index: Int, _ outcome: PublishOutcome) {
        batch.settle(index, outcome)
    }

    mutating func acknowledged(_ tag: UInt64, multiple: Bool) {
        resolve(tag, multiple: multiple) { pending in
            pending.returned.map { .returned(replyCode: $0.code, replyText: $0.text) } ?? .confirmed
        }
    }

    mutating func negativelyAcknowledged(_ tag: UInt64, multiple: Bool) {
        resolve(tag, multiple: multiple) { _ in .nacked }
    }

    /// A basic.return: held until the ack that settles its publish (see the type's comment).
    mutating func returned(exchange: String, routingKey: String, message: AMQPMessage, code: UInt16, text: String) {
        openReturns.append(OpenReturn(exchange: exchange, routingKey: routingKey, message: message, code: code, text: text))
    }

    /// Gives each held return to slot `last`, the publish an ack or nack names by its tag, when that is its
    /// candidate. The lower slots a `multiple` settles are not: RabbitMQ's coalesced confirms put them
    /// first, the returned publish's own ack last. A return whose candidate is not `last` waits for a later
    /// ack; one with no candidate at all (not a publish of this channel's) is dropped.
    private mutating func assignReturns(naming last: Int) {
        var stillOpen: [OpenReturn] = []
        for open in openReturns {
            var identical: [Int] = []
            var sameDestination: [Int] = []
            for slot in head..<pending.count {
                guard let entry = pending[slot], entry.returned == nil else { continue }
                let request = entry.request
                guard request.mandatory, request.exchange == open.exchange, request.routingKey == open.routingKey
                else { continue }
                sameDestination.append(slot)
                if request.message == open.message { identical.append(slot) }
            }
            // The same content first; failing that (a property that does not survive the trip unchanged,
            // such as a NaN header), the same destination.
            let candidates = identical.isEmpty ? sameDestination : identical
            guard !candidates.isEmpty else { continue }
            if candidates.contains(last) {
                pending[last]!.returned = (open.code, open.text)
            } else {
                stillOpen.append(open)
            }
        }
        openReturns = stillOpen
    }

    /// The channel or connection failed: every unconfirmed publish fails, and the next confirm-mode
    /// channel counts from 1 again.
    mutating func failAll(_ error: AMQPError) {
        let entries = pending[head...]
        pending = []
        openReturns = []
        head = 0
        headSequence = 1
        pendingCount = 0
        for entry in entries {
            if let entry { entry.batch.settle(entry.index, .failed(error)) }
        }
    }

    private mutating func resolve(_ tag: UInt64, multiple: Bool, _ outcome: (Pending) -> PublishOutcome) {
        guard tag >= headSequence, tag < nextSequence else { return }
        let last = head + Int(tag - headSequence)
        if !openReturns.isEmpty { assignReturns(naming: last) }
        for slot in (multiple ? head : last)...last {
            guard let entry = pending[slot].take() else { continue }
            pendingCount -= 1
            entry.batch.settle(entry.index, outcome(entry))
        }
        while head < pending.count, pending[head] == nil {
            head += 1
            headSequence += 1
        }
        if head == pending.count {
            pending.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096, head * 2 >= pending.count {
            pending.removeFirst(head)
            head = 0
        }
    }
}

/// The outcomes of one `publish(_:)` batch, delivered together once every publish is settled.
final class ConfirmBatch {
    let requests: [PublishRequest]
    private var outcomes: [PublishOutcome?]
    private var remaining: Int
    private let continuation: CheckedContinuation<[PublishOutcome], Never>

    init(requests: [PublishRequest], continuation: CheckedContinuation<[PublishOutcome], Never>) {
        self.requests = requests
        outcomes = Array(repeating: nil, count: requests.count)
        remaining = requests.count
        self.continuation = continuation
    }

    /// Records the outcome of publish `index` (the first outcome counts) and resumes the caller after the
    /// last one.
    func settle(_ index: Int, _ outcome: PublishOutcome) {
        guard outcomes[index] == nil else { return }
        outcomes[index] = outcome
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: outcomes.map { $0! }) }
    }
}
