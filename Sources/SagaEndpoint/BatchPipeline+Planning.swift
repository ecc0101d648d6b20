import AMQPTransport
import Foundation
import Logging
import SagaStore
import Sagas

// Planning a committed batch: each message's publishes (outbox rows, error-queue copies) and how its
// delivery is settled.
extension BatchPipeline {
    /// Decides each entry's publishes (outbox rows, error-queue copies) and settlement.
    func plan(_ entries: inout [Entry], requests: inout [PublishRequest], outbox: inout [Int: OutboxPublish],
              now: Date) async {
        // One publish per message id and destination: rows with the same id to the same place are copies
        // of one message, but a handler that sends one id to two queues (as `SagaTestHost` shows it) means
        // both to get it. Keyed by the id alone, the second queue's row was marked dispatched unsent.
        struct Destination: Hashable {
            var messageId: String
            var exchange: String
            var routingKey: String
        }
        var published: [Destination: Int] = [:]
        func add(_ row: OutboxRecord, to entry: inout Entry) {
            // Every row here was read from or written to the store, so it has its key.
            let keys = row.key.map { [$0] } ?? []
            let destination = Destination(messageId: row.messageId, exchange: row.exchange, routingKey: row.routingKey)
            if let existing = published[destination] {
                entry.publishes.append(existing)
                outbox[existing]?.rows.append(contentsOf: keys)
                return
            }
            published[destination] = requests.count
            outbox[requests.count] = OutboxPublish(messageId: row.messageId, rows: keys)
            entry.publishes.append(requests.count)
            requests.append(MessageTranslation.publishRequest(row))
        }
        var deferrals: [(Int, WorkItem)] = []
        for index in entries.indices {
            var entry = entries[index]
            // Built only when a record is actually logged: this loop runs for every message.
            var metadata: Logger.Metadata { self.metadata(entry) }
            if let rejection = entry.rejection {
                if let delivery = entry.delivery {
                    entry.publishes.append(requests.count)
                    requests.append(errorCopy(delivery, reason: rejection.description, type: rejection.kind,
                                              attempts: entry.deliveries ?? 1, first: nil, now: now))
                    // The delivery count stays (housekeeping removes it with the inbox): if this copy is
                    // redelivered before its ack, it is diverted again rather than processed.
                } else if let incoming = entry.incoming {
                    // A due row (a poison timeout): its copy goes to the endpoint's error queue, and the row
                    // is deleted once that is confirmed.
                    await moveToErrorQueue(&entry, incoming: incoming, reason: rejection.description, type: rejection.kind,
                                     attempts: entry.deliveries ?? 1, first: nil, requests: &requests, now: now)
                }
                if let copy = entry.publishes.last {
                    // A poison message counts as error-queued too.
                    entry.errorQueued = ErrorQueued(
                        publish: copy, rejected: true, errorQueued: entry.poison, level: .warning,
                        message: "message rejected to the error queue",
                        metadata: metadata.merging(["reason": "\(rejection)"]) { $1 },
                        // A poison message may have failed before: its replay starts afresh too.
                        clearsFailure: entry.poison)
                }
            } else if let error = entry.handlerError {
                await failure(&entry, error: error, requests: &requests, deferrals: &deferrals, index: index, now: now)
            } else if let result = entry.result {
                switch result {
                case .processed(let outbox, let invocations):
                    metrics.processed.increment()
                    entry.wroteDatabase = true
                    // Counted once handled, not when the due row was read: with two processes on one file
                    // both read it, and only one handles it (the other's is withdrawn). A timeout replayed
                    // from the error queue (a delivery naming its saga) counts too: its first firing failed.
                    if entry.incoming?.timeoutTarget != nil,
                       !invocations.contains(where: { $0.outcome == .timeoutForGoneSaga }) {
                        metrics.timeoutsFired.increment()
                    }
                    count(invocations, metadata: metadata)
                    for row in outbox { add(row, to: &entry) }
                    logger.debug("message processed", metadata: metadata.merging(["outgoing": "\(outbox.count)"]) { $1 })
                case .duplicate(let undispatched):
                    metrics.deduplicated.increment()
                    for row in undispatched { add(row, to: &entry) }
                    logger.debug("duplicate message: no effect", metadata: metadata.merging(["republished": "\(undispatched.count)"]) { $1 })
                case .deferred:
                    break
                case .withdrawn:
                    logger.debug("due row withdrawn before its turn (saga completed, or handled elsewhere)", metadata: metadata)
                case .notFound(let policy, let saga):
                    metrics.sagasNotFound.increment()
                    await notFound(&entry, policy: policy, saga: saga, requests: &requests, deferrals: &deferrals,
                                   index: index, now: now)
                case .failed(let error):
                    await failure(&entry, error: error, requests: &requests, deferrals: &deferrals, index: index, now: now)
                }
            }
            entries[index] = entry
        }
        if !deferrals.isEmpty {
            // Park messages for their delayed retry; their deliveries are acked once this commits.
            let results = await store.processBatch(deferrals.map(\.1), now: now)
            for ((index, _), result) in zip(deferrals, results) {
                switch result {
                case .deferred: entries[index].wroteDatabase = true
                case .withdrawn: continue
                case .failed(let error) where Self.isTransient(error):
                    // Not parked (a busy, full or corrupt database): requeued at once, it came straight
                    // back to be parked again, round and round until the database could be written.
                    let metadata = self.metadata(entries[index]).merging(["error": "\(error)"]) { $1 }
                    requeueTransient(&entries[index], storeError: error,
                                     message: "message could not be parked for its later retry; will retry after a pause",
                                     metadata: metadata)
                default: entries[index].settle = .requeue
                }
            }
        }
    }

    private func count(_ invocations: [SagaInvocation], metadata: @autoclosure () -> Logger.Metadata) {
        for invocation in invocations {
            switch invocation.outcome {
            case .started: metrics.sagasStarted.increment()
            case .startedAndCompleted: metrics.sagasStarted.increment(); metrics.sagasCompleted.increment()
            case .completed: metrics.sagasCompleted.increment()
            case .notFound:
                // The default policy: a late message for a saga that is gone (or never was).
                metrics.sagasNotFound.increment()
                logger.info("no saga instance for message; discarded", metadata: metadata().merging([
                    "saga": "\(invocation.saga)"]) { $1 })
            case .notFoundHandled:
                metrics.sagasNotFound.increment()
                logger.info("no saga instance for message; handled by the saga's whenNotFound", metadata: metadata().merging([
                    "saga": "\(invocation.saga)"]) { $1 })
            default: break
            }
        }
    }
}
