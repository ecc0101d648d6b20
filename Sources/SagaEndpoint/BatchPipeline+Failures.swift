import AMQPTransport
import Foundation
import Logging
import SagaStore
import Sagas

/// What the pipeline does with a message that could not be processed: retry it at once (requeue), park
/// it for a delayed retry, or move it to the error queue. Deliveries and due rows (saga timeouts and
/// parked retries) follow the same policy; a due row "requeued" simply stays due.
extension BatchPipeline {
    func failure(_ entry: inout Entry, error: any Error, requests: inout [PublishRequest],
                 deferrals: inout [(Int, WorkItem)], index: Int, now: Date) async {
        let metadata = self.metadata(entry)
        guard let incoming = entry.incoming else { return }
        if Self.isTransient(error) {
            // Busy database, a concurrent update, or a full disk: not the message's fault. Process it again
            // (after the batch's backoff, kept in the process), without counting it as a failure.
            metrics.retried.increment()
            let unavailable: Logger.Message = "database cannot be written (disk full, I/O error, corrupt, or its file moved); message kept, will retry"
            requeueTransient(&entry, storeError: error,
                             message: Self.isStorageUnavailable(error) ? unavailable : "transient failure; message will be retried",
                             level: .info, metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return
        }
        if entry.cutShortByCancellation {
            // The endpoint is being cancelled (a shutdown past its time limit) and the handler with it:
            // back to the queue, neither a failed attempt nor a step toward the poison limit.
            metrics.retried.increment()
            requeueTransient(&entry, storeError: error, message: "handler cut short by the endpoint's cancellation; message handed back",
                             level: .info, metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return
        }
        metrics.failed.increment()
        if let kind = Self.permanentErrorKind(error) ?? (configuration.isUnrecoverable(error) ? Self.errorKind(error) : nil) {
            // Retrying cannot help (the message itself is wrong, or its handler says so): straight to the
            // error queue. Its copy counts the attempts that failed before this one (a 503 before the 400),
            // as a copy after all retries does: `x-attempts: 1` said the handler had run once.
            let earlier = await store.earlierFailure(messageId: incoming.messageId)
            let attempts = (earlier?.attempts ?? 0) + 1
            await moveToErrorQueue(&entry, incoming: incoming, reason: "\(error)", type: kind, attempts: attempts,
                                   first: earlier?.firstFailureAt, requests: &requests, now: now)
            countOnConfirm(&entry, .error, "message cannot be processed; moved to the error queue",
                           metadata.merging(["error": "\(error)", "attempts": "\(attempts)"]) { $1 }, clearsFailure: true)
            return
        }
        let record: FailureRecord?
        do {
            record = try await store.recordFailure(messageId: incoming.messageId, error: "\(error)", now: now)
        } catch let storeError where Self.isTransient(storeError) {
            // The attempt cannot be counted (a busy, full or corrupt database). Taken for a first attempt, it
            // was requeued at once as an immediate retry, again and again: thousands of handler runs a
            // second until the database could be written. Retried after the transient failures' pause.
            metrics.retried.increment()
            requeueTransient(&entry, storeError: storeError,
                             message: "handler failed and the database cannot be written to count the attempt; message kept, will retry",
                             metadata: metadata.merging(["error": "\(error)", "store_error": "\(storeError)"]) { $1 })
            return
        } catch {
            record = nil
        }
        entry.wroteDatabase = record != nil
        let attempts = record?.attempts ?? 1
        let immediate = configuration.immediateRetries
        let delayed = configuration.delayedRetries
        if attempts <= immediate {
            metrics.retried.increment()
            logger.warning("handler failed; retrying", metadata: metadata.merging(["error": "\(error)", "attempt": "\(attempts)"]) { $1 })
            entry.settle = .requeue
        } else if attempts <= immediate + delayed.count {
            metrics.retried.increment()
            let delay = delayed[attempts - immediate - 1]
            logger.warning("handler failed; delayed retry", metadata: metadata.merging([
                "error": "\(error)", "attempt": "\(attempts)", "retry_in": "\(delay)"]) { $1 })
            deferrals.append((index, deferral(entry, incoming: incoming, attempt: attempts, delay: delay, now: now)))
        } else {
            await moveToErrorQueue(&entry, incoming: incoming, reason: "\(error)", type: Self.errorKind(error),
                             attempts: attempts, first: record?.firstFailureAt, requests: &requests, now: now)
            countOnConfirm(&entry, .error, "handler failed after all retries; moved to the error queue",
                           metadata.merging(["error": "\(error)", "attempts": "\(attempts)"]) { $1 }, clearsFailure: true)
        }
    }

    func notFound(_ entry: inout Entry, policy: NotFoundPolicy, saga: SagaInstanceKey,
                  requests: inout [PublishRequest], deferrals: inout [(Int, WorkItem)], index: Int,
                  now: Date) async {
        let metadata = self.metadata(entry).merging(["saga": "\(saga)"]) { $1 }
        guard let incoming = entry.incoming else { return }
        switch policy {
        case .discard:
            break
        case .errorQueue:
            await moveToErrorQueue(&entry, incoming: incoming, reason: "no live saga \(saga)", type: "SagaNotFound",
                             attempts: 1, first: nil, requests: &requests, now: now)
            countOnConfirm(&entry, .warning, "no saga instance for message; moved to the error queue", metadata,
                           clearsFailure: true)
        case .retryLater(let attempts, let delay):
            // Each copy counts its own waits on its parked row, as `SagaTestHost` does and as NServiceBus's and
            // MassTransit's retry counts travel with the message. Counted under the message id, a producer's
            // re-send that came while the first copy waited was the next attempt of both: the copies used up the
            // attempts between them and went to the error queue as SagaNotFound although the saga started in
            // time. Nor are the waits handler failures: counted with them, a message that waited and then failed
            // in its handler had that many fewer retries.
            let (attempt, since) = Self.notFoundWaits(of: entry)
            if attempt <= attempts {
                metrics.retried.increment()
                logger.info("no saga instance yet; retrying later", metadata: metadata.merging(["attempt": "\(attempt)"]) { $1 })
                deferrals.append((index, deferral(entry, incoming: incoming, attempt: attempt, delay: delay, now: now,
                                                  copy: MessageIdentity.randomUUID(), notFoundSince: since ?? now)))
            } else {
                await moveToErrorQueue(&entry, incoming: incoming, reason: "no live saga \(saga) after \(attempts) retries",
                                 type: "SagaNotFound", attempts: attempt, first: since,
                                 requests: &requests, now: now)
                countOnConfirm(&entry, .warning, "no saga instance after retries; moved to the error queue", metadata,
                               clearsFailure: true)
            }
        }
    }

    /// The attempt a copy of a `retryLater` message is at, and since when it waits for its saga: one more than
    /// its parked row says; the first, waiting from now, for a delivery (a copy from the broker, a replay
    /// from the error queue) or a row parked for another reason (a handler's delayed retry).
    static func notFoundWaits(of entry: Entry) -> (attempt: Int, since: Date?) {
        guard let row = entry.dueRow, row.sagaType.isEmpty,
              let since = row.headers[MessageTranslation.notFoundSinceHeader].flatMap({ Double($0) }),
              let parked = row.headers[MessageTranslation.retryAttemptHeader].flatMap({ Int($0) }) else { return (1, nil) }
        return (parked + 1, Date(timeIntervalSince1970: since))
    }

    /// Retries `entry` for a transient reason (a busy, full, corrupt or moved database; a version conflict):
    /// after the batch's pause, not counted as a failure nor toward the poison limit. A delivery is kept in
    /// the process and processed again (`HeldDeliveries`); a due row stays due. Logs `message` at
    /// `level`, or, when the database cannot be written, as the throttled error below (and readiness says so).
    func requeueTransient(_ entry: inout Entry, storeError: any Error, message: Logger.Message,
                          level: Logger.Level = .error, metadata: @autoclosure () -> Logger.Metadata) {
        entry.settle = .requeue
        entry.transient = true
        // Its next round is taken for a possible crash unless excused: a due row's, or the broker's
        // redelivery of a kept delivery whose channel closed meanwhile (processed again in process, it uses
        // the excuse up without being counted).
        if let messageId = entry.incoming?.messageId { transientRequeues.insert(messageId) }
        if Self.isStorageUnavailable(storeError) {
            entry.storageUnavailable = "\(storeError)"
            logStorageUnavailable(message, metadata: metadata())
        } else if Self.isLocked(storeError) {
            entry.storageLocked = "\(storeError)"
            if let count = lockWarnings.admit("locked", messages: 1) {
                logger.warning(message, metadata: metadata().merging(["messages_since_last_warning": "\(count)"]) { $1 })
            }
        } else {
            logger.log(level: level, message, metadata: metadata())
        }
    }

    /// An error about a message retried because the database cannot be written, at most one every
    /// `storageErrors` interval, with how many messages it stands for. One per message and round was a
    /// batch's worth of lines every few seconds for as long as the disk stayed full (often the disk the log
    /// goes to); readiness and `saga_database_unavailable` say meanwhile that it lasts.
    func logStorageUnavailable(_ message: Logger.Message, metadata: Logger.Metadata) {
        guard let count = storageErrors.admit("database", messages: 1) else { return }
        logger.error(message, metadata: metadata.merging(["messages_since_last_error": "\(count)"]) { $1 })
    }

    /// The copy `moveToErrorQueue` just added counts in `saga_messages_error_queued_total`, and is logged
    /// (and, with `clearsFailure`, the message's failure count deleted), once the broker confirmed it (`finish`).
    private func countOnConfirm(_ entry: inout Entry, _ level: Logger.Level, _ message: Logger.Message,
                                _ metadata: Logger.Metadata, clearsFailure: Bool = false) {
        guard let copy = entry.publishes.last else { return }
        entry.errorQueued = ErrorQueued(publish: copy, level: level, message: message, metadata: metadata,
                                        clearsFailure: clearsFailure)
    }

    /// The work item that parks the message until `now + delay`. A due row is replaced in the same
    /// transaction; a saga timeout keeps its id (its message id) and its target.
    private func deferral(_ entry: Entry, incoming: IncomingMessage, attempt: Int, delay: Duration,
                          now: Date, copy: String? = nil, notFoundSince: Date? = nil) -> WorkItem {
        let dueAt = now.addingTimeInterval(delay.timeInterval)
        var item = WorkItem(incoming: incoming)
        if let row = entry.dueRow {
            item.timeoutRow = row.key
            if !row.sagaType.isEmpty {
                var later = row
                later.dueAt = dueAt
                item.deferral = later
                return item
            }
        }
        item.deferral = MessageTranslation.deferral(of: incoming, attempt: attempt, dueAt: dueAt, now: now, copy: copy,
                                                    notFoundSince: notFoundSince)
        return item
    }

    /// Adds the error-queue copy of the entry's message to the batch's publishes. A delivery is acked
    /// once it is confirmed; a due row is deleted then.
    func moveToErrorQueue(_ entry: inout Entry, incoming: IncomingMessage, reason: String, type: String,
                          attempts: Int, first: Date?, requests: inout [PublishRequest], now: Date) async {
        entry.publishes.append(requests.count)
        if let delivery = entry.delivery {
            requests.append(errorCopy(delivery, reason: reason, type: type, attempts: attempts, first: first, now: now))
        } else {
            // A saga timeout has no queue of its own: it belongs to the endpoint's address.
            let queue = incoming.queue.isEmpty ? configuration.endpointAddress : incoming.queue
            var original = MessageTranslation.message(incoming)
            // Its copy names the instance that asked for it (see `timeoutSagaIdHeader`).
            if let target = incoming.timeoutTarget, incoming.headers[MessageTranslation.timeoutSagaIdHeader] == nil,
               let sagaId = await store.sagaId(of: target) {
                original.properties.headers = (original.properties.headers ?? [:])
                    .merging([MessageTranslation.timeoutSagaIdHeader: .string(sagaId)]) { $1 }
            }
            requests.append(MessageTranslation.errorQueueRequest(
                original: original, queue: queue,
                errorQueue: configuration.errorQueue(for: queue), reason: reason, errorType: type,
                attempts: attempts, firstFailure: first, lastFailure: now, frameMax: frameMax))
            entry.deleteRowAfterPublish = true
        }
    }

    func errorCopy(_ delivery: AMQPDelivery, reason: String, type: String, attempts: Int, first: Date?,
                   now: Date) -> PublishRequest {
        MessageTranslation.errorQueueRequest(
            original: delivery.message, queue: delivery.queue, errorQueue: configuration.errorQueue(for: delivery.queue),
            reason: reason, errorType: type, attempts: attempts, firstFailure: first, lastFailure: now,
            frameMax: frameMax)
    }

    /// Busy database or lost optimistic race: the same work will likely succeed if simply retried.
    static func isTransient(_ error: any Error) -> Bool {
        if let error = error as? SagaStoreError { return error.isRetryable }
        if let error = error as? SQLiteError { return error.isRetryable || isStorageUnavailable(error) }
        return false
    }

    /// A full disk, an I/O error, a corrupt database, or a database file that was replaced or deleted while
    /// open (the last two take an operator, and a restart): nothing is wrong with the message, the
    /// database cannot be written now. Counted as a handler failure, every message would go to the error
    /// queue after its retries, to be replayed once the database is repaired.
    /// Another connection holds the database's write lock (after the busy timeout).
    static func isLocked(_ error: any Error) -> Bool {
        guard let error = error as? SQLiteError else { return false }
        return error.code == .busy || error.code == .locked
    }

    /// How long batches may fail on the database's write lock before the endpoint reports the database as
    /// not writable: three busy timeouts (15 s by default), each a wait for the lock that came to nothing.
    static func lockedLimit(_ configuration: EndpointConfiguration) -> Duration {
        configuration.databaseBusyTimeout * 3
    }

    static func isStorageUnavailable(_ error: any Error) -> Bool {
        guard let error = error as? SQLiteError else { return false }
        return error.code == .full || error.code == .ioError || error.code == .corrupt || error.code == .notADatabase
            || error.resultCode == SQLiteError.readOnlyDatabaseMoved
    }

    /// The `x-error-type` of errors that no retry can fix (the message is malformed, has no handler or
    /// no correlation id, the saga's stored state is unreadable, a handler emitted a message AMQP cannot
    /// carry, or threw an `UnrecoverableError`: its type name); nil for the others.
    /// (`EndpointConfiguration.isUnrecoverable` adds the application's own, where the configuration is.)
    static func permanentErrorKind(_ error: any Error) -> String? {
        if error is InvalidOutgoingMessage { return "InvalidOutgoingMessage" }
        if error is any UnrecoverableError { return String(describing: type(of: error)) }
        guard let error = error as? SagaError else { return nil }
        switch error {
        case .malformedMessage: return "MalformedMessage"
        case .noHandler: return "NoHandler"
        case .missingCorrelationId: return "MissingCorrelationId"
        case .noReplyAddress: return "NoReplyAddress"
        case .corruptSagaState: return "CorruptSagaState"
        default: return nil
        }
    }

    static func errorKind(_ error: any Error) -> String {
        if let kind = permanentErrorKind(error) { return kind }
        return String(describing: type(of: error))
    }
}
