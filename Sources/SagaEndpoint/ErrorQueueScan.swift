import AMQPTransport
import Synchronization

/// One pass over an error queue, oldest message first, over the messages it held when the pass started.
///
/// The pass must not see a message twice, so it holds (does not ack) every message it keeps until the
/// pass ends and then hands them all back. The broker sends one consumer at most `prefetch` unacknowledged
/// messages, and prefetch is a 16-bit count: once a consumer's window is full of kept messages, the pass
/// opens another consumer, which gets the next ones. Unlimited prefetch (0) would work with one consumer
/// but lets the broker push the whole queue into this process at once; a window bounds the deliveries
/// waiting in memory, and the pass itself keeps no body, only the last kept tag per consumer channel.
///
/// The pass ends when it has seen as many messages as the passive declare counted at its start (later
/// arrivals, such as replayed messages that failed again, are not part of it), when the visitor asks to
/// stop, or, as a fallback, when nothing arrived for `idle`: the count can be too high when another
/// consumer took messages in between. It could also be too low for a moment, just after another pass
/// handed its messages back, which is why a pass ends only once what it handed back is counted again.
///
/// Kept messages hold their window's channel until the pass ends, so a pass holds at most `window` times
/// the channels the broker lets a connection open (`channel_max`, 2047 by default) minus the two it uses
/// to declare and publish: past that it throws `ErrorQueuePassTooLong`. Windows whose messages were all
/// removed free their channel, so `replay --all` of messages that can all be replayed has no such bound.
///
/// The connection recovers by itself, and so do the consumers, but what the pass held on a lost channel
/// went back to the queue and comes round again: such a pass throws `ErrorQueueScanInterrupted` unless
/// the visitor stopped it (what it found then is still right).
struct ErrorQueueScan {
    enum Disposition {
        /// The message goes back to the queue when the pass ends.
        case keep
        /// The message is acknowledged at once; the visitor has done (and had confirmed) whatever
        /// replaces it.
        case remove
        /// The message is dropped: acknowledged, and the pass goes on only once the broker has taken the
        /// acknowledgement (`AMQPConnection.ackConfirmed`). Nothing replaces it, so an ack lost with the
        /// connection would leave it in the queue while the caller reports it gone.
        case delete
    }

    /// The visitor's answer for one message.
    struct Step {
        var disposition: Disposition
        var stop = false

        static let keep = Step(disposition: .keep)
        static let remove = Step(disposition: .remove)
        static let delete = Step(disposition: .delete)
    }

    struct Outcome {
        /// Messages ready in the queue when the pass started (passive declare).
        var queued: Int
        /// Consumers of the queue when the pass started, before it opened its own (passive declare).
        /// Messages they hold unacknowledged are neither counted in `queued` nor delivered to the pass.
        var otherConsumers = 0
        /// The most the pass was to look at: `queued`, or less with a limit.
        var bound: Int
        /// Messages the pass looked at.
        var visited: Int
        /// Messages it removed (acknowledged).
        var removed = 0
        /// The visitor asked to stop.
        var stopped: Bool
        /// Every message the pass was to look at was looked at (or the visitor stopped it first).
        var isComplete: Bool { stopped || visited >= bound }
    }

    /// One opening of a consumer channel: a channel number is used again after a recovery.
    private struct Opening: Hashable {
        var channel: UInt16
        var epoch: UInt64
        init(_ tag: DeliveryTag) { (channel, epoch) = (tag.channel, tag.channelEpoch) }
    }

    let connection: AMQPConnection
    let queue: String
    /// The most messages one consumer holds unacknowledged.
    var window: UInt16 = .max
    /// The first consumer's window (nil: `window`). Before the first body arrives nothing tells how large
    /// they are, and a window is what the broker may push into this process ahead of the visitor: a
    /// replay waits for each confirm, and 1,000 error copies of over-size messages (up to the broker's
    /// max_message_size each) pushed ahead took the memory of all of them.
    var firstWindow: UInt16?
    /// With a value, later windows are cut to this many body bytes at the size of the largest body seen so
    /// far (at least one message, at most `window`). Fewer messages per window means fewer kept messages
    /// before the channels run out (`ErrorQueuePassTooLong`), which only large bodies bring about.
    var aheadBytes: Int?
    /// Only a fallback (the count from the start is the bound), so generous: a busy broker or machine can
    /// take a while to send a new consumer its first delivery.
    var idle: Duration = .seconds(2)

    /// Looks at up to `limit` of the messages the queue holds now, oldest first; `visit` decides on each.
    /// `removed` hears of each message once it is acknowledged (for `.delete`, once the broker took the
    /// ack): a caller whose pass fails later still knows what it removed.
    func run(limit: Int = .max, stoppedIsComplete: Bool = true, removed: (AMQPDelivery) -> Void = { _ in },
             _ visit: (AMQPDelivery) async throws -> Step) async throws -> Outcome {
        let state = try await connection.checkQueue(queue)
        let queued = state.messageCount
        var outcome = Outcome(queued: queued, otherConsumers: state.consumerCount, bound: min(max(limit, 0), queued),
                              visited: 0, stopped: false)
        var lastKept: [Opening: DeliveryTag] = [:]
        var largestBody = 0
        let activity = ActivityClock()
        do {
            while outcome.visited < outcome.bound, !outcome.stopped {
                var size = Int(max(outcome.visited == 0 ? firstWindow ?? window : window, 1))
                if let aheadBytes, largestBody > 0 { size = min(size, max(aheadBytes / largestBody, 1)) }
                let prefetch = UInt16(min(outcome.bound - outcome.visited, size))
                let filled = try await consumeWindow(prefetch: prefetch, activity: activity, outcome: &outcome,
                                                     lastKept: &lastKept, largestBody: &largestBody, removed: removed, visit)
                // A window that ended without filling up, reaching the bound or being stopped went idle:
                // the queue had fewer messages than counted.
                if !filled, outcome.visited < outcome.bound, !outcome.stopped { break }
            }
        } catch {
            _ = try? await requeue(lastKept)
            throw error
        }
        // Kept messages whose channel is gone went back to the queue during the pass, so it may have
        // seen them twice and counted them against the bound instead of the last ones: a search would
        // call a message absent that is there, a listing repeat some and leave others out.
        if let lost = try await requeue(lastKept), !outcome.stopped || !stoppedIsComplete {
            throw ErrorQueueScanInterrupted(queue: queue, visited: outcome.visited, queued: outcome.queued, cause: lost)
        }
        if outcome.visited > 0 { await settle(until: outcome.queued - outcome.removed) }
        return outcome
    }

    /// One consumer until its window is full of kept messages (true), the bound is reached, the visitor
    /// stops, or it went idle. The consumer is cancelled before returning, so nothing handed back later
    /// is delivered to it again.
    private func consumeWindow(prefetch: UInt16, activity: ActivityClock, outcome: inout Outcome,
                               lastKept: inout [Opening: DeliveryTag], largestBody: inout Int,
                               removed: (AMQPDelivery) -> Void, _ visit: (AMQPDelivery) async throws -> Step) async throws -> Bool {
        let consumer: AMQPConsumer
        do {
            consumer = try await connection.consume(queue: queue, prefetch: prefetch)
        } catch let error as AMQPError where error.code == .channelLimit && !lastKept.isEmpty {
            // Every channel the connection may open holds kept messages (windows that kept none closed
            // theirs): the pass cannot go further without handing some back, and then it would see them
            // again. Say how far it got and why, rather than the transport's bare refusal.
            throw ErrorQueuePassTooLong(queue: queue, visited: outcome.visited, queued: outcome.queued,
                                        removed: outcome.removed, channelLimit: error)
        }
        let idle = idle
        let watchdog = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(50))
                if activity.idleFor > idle { try await consumer.cancel(); return }
            }
        }
        defer { watchdog.cancel() }
        activity.endWork()
        var held = 0
        var filled = false
        do {
            for try await delivery in consumer.deliveries {
                activity.beginWork()
                outcome.visited += 1
                largestBody = max(largestBody, delivery.message.body.count)
                let step: Step
                do {
                    step = try await visit(delivery)
                } catch {
                    // Neither kept nor removed: hand it back with the kept ones instead of leaving it
                    // unacknowledged until the connection closes.
                    lastKept[Opening(delivery.tag)] = delivery.tag
                    throw error
                }
                switch step.disposition {
                case .keep:
                    lastKept[Opening(delivery.tag)] = delivery.tag
                    held += 1
                case .remove, .delete:
                    if step.disposition == .delete {
                        try await connection.ackConfirmed(delivery.tag)
                    } else {
                        try await connection.ack(delivery.tag)
                    }
                    outcome.removed += 1
                    removed(delivery)
                }
                activity.endWork()
                if step.stop { outcome.stopped = true; break }
                if outcome.visited >= outcome.bound { break }
                // Acked messages free their place in the window; only kept ones fill it.
                if held >= Int(prefetch) { filled = true; break }
            }
        } catch {
            try? await consumer.cancel()
            throw error
        }
        try await consumer.cancel()
        return filled
    }

    /// Waits, at most `idle`, until the queue counts at least `expected` ready messages again: what it
    /// held minus what this pass removed. The messages handed back travel on the consumer channels and
    /// the passive declare of the next pass on another one, which the broker does not order, so a
    /// `replay` right after a `show` could count too few and miss its message. Falls short only when
    /// another consumer took messages meanwhile; then the wait ends at `idle`.
    private func settle(until expected: Int) async {
        let deadline = ContinuousClock.now + idle
        while ContinuousClock.now < deadline, !Task.isCancelled {
            guard let state = try? await connection.checkQueue(queue), state.messageCount < expected else { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Hands the kept messages back: one nack per consumer channel covers every unacknowledged delivery
    /// up to its last kept tag, which are exactly the kept ones (the removed ones were acked). Nil when
    /// all were handed back here; else why some went back already, their channel being lost (the
    /// broker's reason, such as its consumer_timeout, when it closed the channel itself).
    private func requeue(_ lastKept: [Opening: DeliveryTag]) async throws -> AMQPError? {
        var lost: AMQPError?
        for tag in lastKept.values {
            do {
                try await connection.nack(tag, multiple: true, requeue: true)
            } catch let error as AMQPError where error.code == .staleDelivery {
                // The channel or connection they came on is gone: the broker has requeued them already.
                if lost?.replyCode == nil { lost = error }
            }
        }
        return lost
    }
}

/// How long the scan has been waiting for a delivery, read by its idle watchdog. Time spent in the
/// visitor (a replay waits for the broker's confirm) does not count: a slow publish is not an empty queue.
private final class ActivityClock: Sendable {
    private let state = Mutex((since: ContinuousClock.now, busy: false))
    func beginWork() { state.withLock { $0 = (.now, true) } }
    func endWork() { state.withLock { $0 = (.now, false) } }
    var idleFor: Duration {
        state.withLock { $0.busy ? .zero : ContinuousClock.now - $0.since }
    }
}
