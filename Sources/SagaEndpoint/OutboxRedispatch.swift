import AMQPTransport
import Foundation
import SagaStore

// Housekeeping's re-send of outbox rows still unconfirmed a while after they were written (a crash between
// commit and confirm, a message the broker returned for want of a queue or refused for a full queue), and the
// move to the error queue of a command or reply returned for longer than `unroutableTimeout`, and of a
// message refused for longer than `refusedTimeout`.
extension SagaEndpoint {
    /// A row to move to the error queue, and why.
    private struct Expired {
        var row: OutboxRecord
        var answer: ReturnedRows.Answer
        /// What the broker said (its reply code and text, or the nack).
        var broker: String
    }

    /// Where the next pass starts, and whether it may start at once.
    struct OutboxPass: Sendable, Equatable {
        /// Where the next pass reads.
        var next: OutboxCursor
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
                          cursor: OutboxCursor, returned: inout ReturnedRows, limit: Int = 500,
                          wallClock: () -> Date = { Date() }) async throws -> OutboxPass {
        let delay = configuration.outboxRedispatchDelay.timeInterval
        let started = wallClock()
        // How long a row has been returned, and since it was last sent, on the monotonic clock (ReturnedRows).
        let tick = ContinuousClock.now
        returned.prune(notSentFor: (configuration.outboxRedispatchDelay
                                    + max(configuration.unroutableTimeout, configuration.refusedTimeout)) * 2, now: tick)
        // Dated over a minute (or the delay) ahead: written before the clock was stepped back, so old.
        let (claimed, next) = try await store.claimUnconfirmedOutbox(createdBefore: started.addingTimeInterval(-delay),
                                                                     orAfter: started.addingTimeInterval(max(delay, 60)),
                                                                     cursor: cursor, limit: limit)
        defer { store.publishing.remove(claimed.map(\.messageId)) }
        // A returned or refused row waits `outboxRedispatchDelay` between its sends, as the others wait after
        // being written.
        let rows = claimed.filter { row in
            row.seq.map {
                returned.mayResend($0, messageId: row.messageId, now: tick, every: configuration.outboxRedispatchDelay)
            } ?? true
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
        var expired: [Expired] = []
        for (row, outcome) in zip(rows, outcomes) {
            guard let seq = row.seq else { continue }
            if outcome == .nacked {
                // Refused (a full queue): sent again after the delay, not at every pass; moved once refused
                // for `refusedTimeout` as this process saw it.
                let since = returned.refused(seq, messageId: row.messageId, now: returnedAt)
                if returnedAt - since >= configuration.refusedTimeout {
                    expired.append(Expired(row: row, answer: .refused, broker: "basic.nack"))
                }
                continue
            }
            guard case .returned(let code, let text) = outcome, row.exchange.isEmpty else {
                returned.forget([seq])
                continue
            }
            // Returned for `unroutableTimeout` as this process saw it, not by the row's age.
            let since = returned.returned(seq, messageId: row.messageId, now: returnedAt)
            if returnedAt - since >= configuration.unroutableTimeout {
                expired.append(Expired(row: row, answer: .returned, broker: "\(code) \(text)"))
            }
        }
        if !expired.isEmpty {
            let moved = await moveToErrorQueue(expired, store: store, publisher: publisher, metrics: metrics, now: now)
            returned.forget(moved.compactMap(\.seq))
        }
        return OutboxPass(next: next, fullAndConfirmed: rows.count == limit && confirmed.count == rows.count)
    }

    /// Sends each row's message to the endpoint's error queue (as timeouts' copies go there: outgoing
    /// messages have no input queue of their own), naming where it was sent (`x-original-queue` its queue, or
    /// for an event `x-original-exchange` and `x-original-routing-key`), so that a replay sends it there once
    /// the queue exists or has room; the row counts as dispatched once the copy is confirmed. Returned, or
    /// refused, for ever, it was sent again every few seconds for as long as the endpoint ran.
    private func moveToErrorQueue(_ rows: [Expired], store: StoreWorker, publisher: AMQPConnection,
                                  metrics: EndpointMetrics, now: Date) async -> [OutboxRecord] {
        let errorQueue = configuration.errorQueue(for: configuration.endpointAddress)
        let frameMax = OutgoingLimits.frameMax(of: publisher)
        // Only the rows this process leased: another process on the same file may be moving them too.
        let leased = Set(await store.lease(rows.map(\.row), now: now).compactMap(\.seq))
        let rows = rows.filter { $0.row.seq.map(leased.contains) ?? false }
        guard !rows.isEmpty else { return [] }
        let copies = rows.map { expired in
            let row = expired.row
            let destination = row.exchange.isEmpty ? "queue '\(row.routingKey)'"
                : "exchange '\(row.exchange)' (routing key '\(row.routingKey)')"
            let reason = switch expired.answer {
            case .returned:
                "the broker returned it for over \(configuration.unroutableTimeout) (\(expired.broker)): no queue "
                    + "'\(row.routingKey)'; sent while handling message \(row.incomingMessageId). Replay it once "
                    + "the queue exists"
            case .refused:
                "the broker refused it for over \(configuration.refusedTimeout) (\(expired.broker)): a queue it "
                    + "routes to is full (overflow reject-publish); sent to \(destination) while handling message "
                    + "\(row.incomingMessageId). Replay it once the queue has room"
            }
            return MessageTranslation.errorQueueRequest(
                original: MessageTranslation.publishRequest(row).message, queue: row.routingKey, exchange: row.exchange,
                errorQueue: errorQueue, reason: reason,
                errorType: expired.answer == .returned ? "UnroutableMessage" : "RefusedMessage", attempts: 1,
                firstFailure: row.createdAt, lastFailure: now, frameMax: frameMax)
        }
        let outcomes = await publisher.publish(copies)
        let moved = zip(rows, outcomes).filter { $0.1.isConfirmed }.map(\.0)
        await store.markDispatched(moved.compactMap(\.row.key), now: now)
        metrics.unroutableErrorQueued.increment(by: moved.count { $0.answer == .returned })
        metrics.refusedErrorQueued.increment(by: moved.count { $0.answer == .refused })
        if let first = moved.first?.row {
            logger.warning("outgoing messages returned or refused for too long moved to the error queue", metadata: [
                "count": "\(moved.count)", "message_id": "\(first.messageId)", "message_type": "\(first.messageType)",
                "exchange": "\(first.exchange)", "routing_key": "\(first.routingKey)",
                "incoming_message_id": "\(first.incomingMessageId)", "error_queue": "\(errorQueue)"])
        }
        if moved.count < rows.count {
            logger.warning("outgoing messages returned or refused for too long could not be moved to the error queue; trying again",
                           metadata: ["count": "\(rows.count - moved.count)", "error_queue": "\(errorQueue)"])
        }
        return moved.map(\.row)
    }
}
