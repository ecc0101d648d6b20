import AMQPTransport
import Foundation
import SagaStore

// Housekeeping's re-send of outbox rows still unconfirmed a while after they were written (a crash between
// commit and confirm, a message the broker returned for want of a queue), and the move of a command or
// reply returned for longer than `unroutableTimeout` to the error queue.
extension SagaEndpoint {
    /// Where the next pass starts, and whether it may start at once.
    struct OutboxPass: Sendable, Equatable {
        /// The row after which the next pass reads (0: from the start again).
        var next: Int64
        /// The pass sent a full page (`limit` rows) and the broker confirmed every one: more rows wait, and
        /// nothing says the broker refuses them. Paced at one pass per housekeeping sleep (2 s), a backlog
        /// went out at about 250 messages a second (2,900 rows refused by a full queue took 12 s once it
        /// had room; 100,000 rows would take about 7 minutes) while the pipeline moves thousands.
        var fullAndConfirmed: Bool
    }

    /// One pass over up to `limit` rows from the row after `cursor` on; returns where the next pass starts
    /// (the backlog is gone round in passes, so rows that keep failing do not hide the ones after them).
    /// `wallClock` dates what is stored and compared with stored dates (tests step it as NTP would).
    func redispatchOutbox(store: StoreWorker, publisher: AMQPConnection, metrics: EndpointMetrics,
                          cursor: Int64, returned: inout ReturnedRows, limit: Int = 500,
                          wallClock: () -> Date = { Date() }) async throws -> OutboxPass {
        let delay = configuration.outboxRedispatchDelay.timeInterval
        let started = wallClock()
        // How long a row has been returned, and since it was last sent, on the monotonic clock (ReturnedRows).
        let tick = ContinuousClock.now
        returned.prune(notSentFor: (configuration.outboxRedispatchDelay + configuration.unroutableTimeout) * 2, now: tick)
        // Dated over a minute (or the delay) ahead: written before the clock was stepped back, so old.
        let (claimed, next) = try await store.claimUnconfirmedOutbox(createdBefore: started.addingTimeInterval(-delay),
                                                                     orAfter: started.addingTimeInterval(max(delay, 60)),
                                                                     after: cursor, limit: limit)
        defer { store.publishing.remove(claimed.map(\.messageId)) }
        // A returned or refused row waits `outboxRedispatchDelay` between its sends, as the others wait after
        // being written.
        let rows = claimed.filter {
            $0.seq.map { returned.mayResend($0, now: tick, every: configuration.outboxRedispatchDelay) } ?? true
        }
        guard !rows.isEmpty else { return OutboxPass(next: next, fullAndConfirmed: false) }
        var requests = rows.map(MessageTranslation.publishRequest)
        let spans = tracing?.startPublishing(&requests, at: requests.indices)
        let publishStarted = ContinuousClock.now
        let outcomes = await publisher.publish(requests)
        spans?.end(outcomes)
        // Counted like the pipeline's publishes: these are the re-sends an operator watches for.
        metrics.publishDuration.record(since: publishStarted)
        let confirmed = zip(rows, outcomes).filter { $0.1.isConfirmed }.compactMap { $0.0.key }
        metrics.published.increment(by: confirmed.count)
        await store.markDispatched(confirmed, now: wallClock())
        if let (row, outcome) = zip(rows, outcomes).first(where: { !$0.1.isConfirmed }) {
            // Why they are still not out: the first one that failed stands for the rest.
            metrics.unconfirmed.increment(by: rows.count - confirmed.count)
            logger.warning("re-published unconfirmed outbox messages; some are still not confirmed", metadata: [
                "count": "\(rows.count)", "confirmed": "\(confirmed.count)", "message_id": "\(row.messageId)",
                "message_type": "\(row.messageType)", "exchange": "\(row.exchange)",
                "routing_key": "\(row.routingKey)", "outcome": "\(outcome)"])
        } else {
            logger.info("re-published unconfirmed outbox messages", metadata: [
                "count": "\(rows.count)", "confirmed": "\(confirmed.count)"])
        }
        let now = wallClock()
        let returnedAt = ContinuousClock.now
        var expired: [(OutboxRecord, String)] = []
        for (row, outcome) in zip(rows, outcomes) {
            guard let seq = row.seq else { continue }
            if outcome == .nacked {
                // Refused (a full queue): sent again after the delay, not at every pass; never moved.
                returned.refused(seq, now: returnedAt)
                continue
            }
            guard case .returned(let code, let text) = outcome, row.exchange.isEmpty else {
                returned.forget([seq])
                continue
            }
            // Returned for `unroutableTimeout` as this process saw it, not by the row's age.
            let since = returned.returned(seq, now: returnedAt)
            if returnedAt - since >= configuration.unroutableTimeout {
                expired.append((row, "\(code) \(text)"))
            }
        }
        if !expired.isEmpty {
            let moved = await moveUnroutable(expired, store: store, publisher: publisher, metrics: metrics, now: now)
            returned.forget(moved.compactMap(\.seq))
        }
        return OutboxPass(next: next, fullAndConfirmed: rows.count == limit && confirmed.count == rows.count)
    }

    /// Sends each row's message to the endpoint's error queue (as timeouts' copies go there: outgoing
    /// messages have no input queue of their own), with its queue as `x-original-queue`, so that a replay
    /// sends it there once the queue exists; the row counts as dispatched once the copy is confirmed.
    /// Returned for ever, it was sent again every few seconds for as long as the endpoint ran.
    private func moveUnroutable(_ rows: [(row: OutboxRecord, broker: String)], store: StoreWorker,
                                publisher: AMQPConnection, metrics: EndpointMetrics, now: Date) async -> [OutboxRecord] {
        let errorQueue = configuration.errorQueue(for: configuration.endpointAddress)
        let frameMax = OutgoingLimits.frameMax(of: publisher)
        // Only the rows this process leased: another process on the same file may be moving them too.
        let leased = Set(await store.lease(rows.map(\.row), now: now).compactMap(\.seq))
        let rows = rows.filter { $0.row.seq.map(leased.contains) ?? false }
        guard !rows.isEmpty else { return [] }
        let copies = rows.map { row, broker in
            MessageTranslation.errorQueueRequest(
                original: MessageTranslation.publishRequest(row).message, queue: row.routingKey, errorQueue: errorQueue,
                reason: "the broker returned it for over \(configuration.unroutableTimeout) (\(broker)): no queue "
                    + "'\(row.routingKey)'; sent while handling message \(row.incomingMessageId). Replay it once "
                    + "the queue exists",
                errorType: "UnroutableMessage", attempts: 1, firstFailure: row.createdAt, lastFailure: now,
                frameMax: frameMax)
        }
        let outcomes = await publisher.publish(copies)
        let moved = zip(rows, outcomes).filter { $0.1.isConfirmed }.map(\.0.row)
        await store.markDispatched(moved.compactMap(\.key), now: now)
        metrics.unroutableErrorQueued.increment(by: moved.count)
        if let first = moved.first {
            logger.warning("outgoing messages returned for too long moved to the error queue", metadata: [
                "count": "\(moved.count)", "message_id": "\(first.messageId)", "message_type": "\(first.messageType)",
                "routing_key": "\(first.routingKey)", "incoming_message_id": "\(first.incomingMessageId)",
                "error_queue": "\(errorQueue)"])
        }
        if moved.count < rows.count {
            logger.warning("outgoing messages returned for too long could not be moved to the error queue; trying again",
                           metadata: ["count": "\(rows.count - moved.count)", "error_queue": "\(errorQueue)"])
        }
        return moved
    }
}
