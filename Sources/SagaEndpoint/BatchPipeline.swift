import AMQPTransport
import Foundation
import Logging
import SagaStore
import Sagas
import Synchronization
import Tracing

/// Processes one batch of work (group commit): validate, run stateless handlers, one SQLite transaction
/// with a savepoint per message, publish every outgoing message and wait for all confirms together, then
/// acknowledge. Nothing is acknowledged before its transaction committed and its outgoing messages were
/// confirmed (or, returned by the broker for want of a queue, are kept in the outbox for housekeeping),
/// so a crash anywhere loses nothing; outgoing ids are deterministic, so a re-send after a
/// crash carries the same id and downstream inboxes drop it.
struct BatchPipeline: Sendable {
    let configuration: EndpointConfiguration
    let dispatcher: MessageDispatcher
    let store: StoreWorker
    /// Runs saga handlers before the transaction, off the SQLite thread; nil runs them inside it.
    let handlersAhead: HandlersAhead?
    let publisher: AMQPConnection
    /// The largest frame the publisher's connection negotiated, its latest after a recovery: error-queue
    /// copies must fit in one.
    var frameMax: Int { OutgoingLimits.frameMax(of: publisher) }
    let consumer: AMQPConnection
    let metrics: EndpointMetrics
    /// Readiness: not ready while batches cannot write the database.
    let health: EndpointHealth
    let logger: Logger
    /// Nil without a tracer: then no span is started and nothing is allocated for tracing.
    let tracing: PipelineTracing?
    /// Grows while batches fail for transient reasons (a full disk, a locked database), so the deliveries
    /// processed again do not come straight back in a hot loop.
    let backoff = TransientBackoff()
    /// Messages kept or handed back for a transient reason or unconfirmed outgoing messages, whose next
    /// delivery is not a delivery that may have crashed the process (see `divertPoisonMessages`).
    let transientRequeues = TransientRequeues()
    /// The endpoint's intake: deliveries kept in the process (`heldDeliveries`) are put back into it.
    let work: WorkQueue
    /// Deliveries kept unacknowledged to be processed again in process (a transient failure, outgoing
    /// messages not confirmed) instead of being handed back to their queue, which a quorum queue counts.
    let heldDeliveries = HeldDeliveries()
    /// Holds due rows whose error-queue copy was not confirmed for a while before they are due again.
    let unconfirmedDueRows = UnconfirmedDueRows()
    /// Keeps the warnings about unconfirmed publishes to one a second per destination and outcome.
    let unconfirmedWarnings = WarningThrottle()
    /// Keeps the errors about messages requeued while the database cannot be written to one every 30 s.
    let storageErrors = WarningThrottle(interval: .seconds(30))
    /// Keeps the warnings about messages requeued while another connection holds the database's write lock
    /// to one every 30 s (one per message and round was about 80 lines a second).
    let lockWarnings = WarningThrottle(interval: .seconds(30))
    /// How long batches have failed on the database's write lock (not ready past a limit).
    let databaseLocks = DatabaseLockWatch()
    /// Stateless handlers' results for messages whose transaction has not ended, for copies close behind.
    let statelessResults = StatelessResults()
    /// When this pipeline (the endpoint's run) started: due rows older than that are counted.
    let startedAt = Date()

    /// Whether the sources hold a redelivery, or a due row that an earlier process may have been
    /// handling when it died (`mayHaveBeenTried`). The endpoint lets the batch before such a one settle
    /// first, so that a crash while processing a suspect blames no message still in flight.
    func containsRedelivery(_ sources: [WorkSource]) -> Bool {
        sources.contains { source in
            switch source {
            case .delivery(let delivery): delivery.redelivered
            case .due(let row): mayHaveBeenTried(row)
            }
        }
    }

    /// A due row has no redelivered flag. One that was due before this process started may have been
    /// taken by an earlier process that died handling it (a timeout handler that kills the process would
    /// otherwise crash-loop the endpoint at every start), so it is counted like a redelivery.
    func mayHaveBeenTried(_ row: TimeoutRecord) -> Bool {
        row.dueAt < startedAt
    }

    /// Runs the batch through its transaction and returns what remains to be published and settled, in
    /// order. Suspects (see below) are processed, published and settled here, one at a time.
    func prepare(_ sources: [WorkSource]) async -> [PreparedBatch] {
        let (entries, now) = await intake(sources)
        // A crash during a batch blames every message in it. Messages that came back after such a crash
        // are therefore processed one at a time, first, so that only a message that really kills the
        // process keeps accumulating deliveries. Their acks must not use `multiple`: the rest of the batch
        // is not settled yet.
        let suspects = entries.indices.filter { (entries[$0].deliveries ?? 0) >= 2 && entries[$0].item != nil }
        if !suspects.isEmpty, entries.count > 1 {
            for index in suspects {
                await finish(await prepare([entries[index]], now: now, multipleAcks: false))
            }
            let rest = entries.indices.filter { !suspects.contains($0) }.map { entries[$0] }
            return rest.isEmpty ? [] : [await prepare(rest, now: now, multipleAcks: true)]
        }
        return [await prepare(entries, now: now, multipleAcks: true)]
    }

    /// The first stage of a batch without redeliveries (see `containsRedelivery`): its handlers,
    /// the sagas' too (`HandlersAhead`), run while the previous batch commits. `commit` follows.
    func handle(_ sources: [WorkSource], after previous: PendingBatch?) async -> PendingBatch {
        let (entries, now) = await intake(sources)
        return await runHandlers(entries, now: now, multipleAcks: true, sagasAhead: true,
                                 after: previous?.sagaStates ?? [:])
    }

    private func prepare(_ batch: [Entry], now: Date, multipleAcks: Bool) async -> PreparedBatch {
        await commit(await runHandlers(batch, now: now, multipleAcks: multipleAcks, sagasAhead: false))
    }

    private func runHandlers(_ batch: [Entry], now: Date, multipleAcks: Bool, sagasAhead: Bool,
                             after previous: [SagaInstanceKey: StoredSaga?] = [:]) async -> PendingBatch {
        let started = ContinuousClock.now
        metrics.batchSize.record(batch.count)
        var entries = batch
        CrashPoint.afterReceive.check()
        await runStatelessHandlers(&entries, now: now)
        var sagaStates: [SagaInstanceKey: StoredSaga?] = [:]
        if sagasAhead, let handlersAhead {
            let indices = entries.indices.filter { entries[$0].item != nil }
            let ran = await handlersAhead.run(indices.map { entries[$0].item! }, after: previous, now: now)
            for (index, item) in zip(indices, ran.items) { entries[index].item = item }
            sagaStates = ran.written
        }
        return PendingBatch(entries: entries, sagaStates: sagaStates, now: now, multipleAcks: multipleAcks,
                            started: started)
    }

    /// The transaction; then which messages to publish for each entry.
    func commit(_ pending: PendingBatch) async -> PreparedBatch {
        var entries = pending.entries
        let now = pending.now
        let commitStarted = ContinuousClock.now
        let indices = entries.indices.filter { entries[$0].item != nil }
        let results = await store.processBatch(indices.map { entries[$0].item! }, now: now)
        for (index, result) in zip(indices, results) { entries[index].result = result }
        statelessResults.forget(entries.filter(\.recordedStatelessResult).compactMap { $0.incoming?.messageId })
        metrics.commitDuration.record(since: commitStarted)
        CrashPoint.afterCommit.check()

        var requests: [PublishRequest] = []
        var outbox: [Int: OutboxPublish] = [:]
        // The rows to publish were claimed in `store.publishing` by processBatch; `finish` releases them.
        await plan(&entries, requests: &requests, outbox: &outbox, now: now)
        return PreparedBatch(entries: entries, requests: requests, outbox: outbox,
                             multipleAcks: pending.multipleAcks, now: now, started: pending.started)
    }

    /// Publishes the batch's messages, awaits their confirms, then acknowledges (or keeps what must be tried
    /// again).
    func finish(_ batch: PreparedBatch) async {
        let publishStarted = ContinuousClock.now
        let entries = batch.entries
        var requests = batch.requests
        // The crash point sits between sending and awaiting the confirms: the broker may or may not
        // have the messages, and the restarted endpoint must send them again under the same ids.
        if requests.isEmpty { CrashPoint.afterPublish.check() }
        let publishSpans = tracing?.startPublishing(&requests, at: batch.outbox.keys)
        let outcomes = await publisher.publish(requests, afterSending: { CrashPoint.afterPublish.check() })
        publishSpans?.end(outcomes)
        // Only a batch that sent something waited for the broker: a sample for each batch that published
        // nothing (a saga that emits nothing, duplicates) pulled the confirm latency's mean and median
        // down to microseconds, hiding a slow broker.
        if !requests.isEmpty { metrics.publishDuration.record(since: publishStarted) }
        let confirmed = outcomes.filter(\.isConfirmed).count
        metrics.published.increment(by: confirmed)
        if confirmed < outcomes.count { metrics.unconfirmed.increment(by: outcomes.count - confirmed) }
        // Confirmed rows are marked with the next transaction and stay claimed until then (`DispatchMarks`);
        // the others are released now, for a duplicate or housekeeping to send again.
        let confirmedOutbox = batch.outbox.filter { outcomes[$0.key].isConfirmed }.map(\.value)
        store.markDispatchedWithNextCommit(confirmedOutbox.flatMap(\.rows), releasing: confirmedOutbox.map(\.messageId))
        // (One id sent to two places, confirmed at one: released with its mark.)
        let marked = Set(confirmedOutbox.map(\.messageId))
        store.publishing.remove(batch.outbox.filter { !outcomes[$0.key].isConfirmed && !marked.contains($0.value.messageId) }
            .map(\.value.messageId))
        // Before the due rows are deleted: a row gone says its message is dealt with, its count included.
        var failuresToClear: [String] = []
        for entry in entries {
            guard let copy = entry.errorQueued, outcomes[copy.publish].isConfirmed else { continue }
            if copy.rejected { metrics.rejected.increment() }
            if copy.errorQueued { metrics.errorQueued.increment() }
            logger.log(level: copy.level, copy.message, metadata: copy.metadata)
            if copy.clearsFailure, let messageId = entry.incoming?.messageId { failuresToClear.append(messageId) }
        }
        if !failuresToClear.isEmpty { await store.clearFailures(failuresToClear) }
        // A due row sent to the error queue is deleted once its copy is confirmed; otherwise it stays due,
        // and is held for a while before it is handed on again (`UnconfirmedDueRows`).
        var settledRows: [(key: TimeoutKey, metadata: Logger.Metadata)] = []
        var unsettledRows: [String] = []
        var handedBack: Set<String> = []
        for entry in entries where entry.deleteRowAfterPublish {
            guard let row = entry.dueRow else { continue }
            if entry.publishes.allSatisfy({ outcomes[$0].isConfirmed }) {
                settledRows.append((row.key, metadata(entry)))
            } else {
                unsettledRows.append(row.timeoutId)
                if let messageId = entry.incoming?.messageId { handedBack.insert(messageId) }
            }
        }
        if !settledRows.isEmpty { await store.deleteTimeouts(settledRows) }
        unconfirmedDueRows.failed(unsettledRows)
        unconfirmedDueRows.succeeded(entries.compactMap { $0.dueRow?.timeoutId }.filter { !unsettledRows.contains($0) })
        CrashPoint.afterConfirm.check()

        // Only an entry that wrote to the database says it can be written: a message rejected before any
        // handler (a type nobody handles) touches none, and made the endpoint ready again while every
        // other message was still requeued; nor does one whose transaction rolled back (a body its handler
        // cannot decode, sent to the error queue), or a duplicate (its transaction writes nothing, and
        // commits on a full disk). (A poison message's count was just written.)
        let wroteDatabase = entries.contains(where: { $0.wroteDatabase || $0.poison })
        if wroteDatabase || entries.contains(where: \.storeAnswered) { databaseLocks.available() }
        if let problem = entries.lazy.compactMap(\.storageUnavailable).first {
            health.databaseCannotBeWritten(problem)
        } else if !wroteDatabase, let lockError = entries.lazy.compactMap(\.storageLocked).first,
                  let lasted = databaseLocks.locked(limit: Self.lockedLimit(configuration),
                                                    gap: configuration.databaseBusyTimeout + .seconds(6),
                                                    waited: configuration.databaseBusyTimeout) {
            health.databaseCannotBeWritten("another connection has held its write lock for \(Int(lasted.timeInterval)) s "
                + "(\(lockError)): a long transaction of another process (a sqlite3 session, a VACUUM, a migration?)")
        } else if wroteDatabase, health.databaseWritten() {
            logger.notice("the database can be written again")
        }
        if entries.contains(where: \.transient) {
            let delay = backoff.next()
            logger.info("transient failures in this batch; processing its messages again after a pause", metadata: ["pause": "\(delay)"])
            await pauseUnlessStopping(delay)
        } else {
            backoff.reset()
        }
        handedBack.formUnion(await settle(entries, outcomes: outcomes, requests: requests,
                                          outboxPublishes: Set(batch.outbox.keys), multipleAcks: batch.multipleAcks))
        // Kept by this process because its outgoing messages (its error-queue copy) were not confirmed (or, a
        // due row, left due): its next round is no sign of a crash either. Counted, a failed message whose
        // error queue was missing for `maxDeliveries` rounds went there as a PoisonMessage, its handler's
        // error gone. A poison message stays one: excused, its next delivery would be processed (and crash)
        // again. A kept delivery processed again in process uses its excuse up (`divertPoisonMessages`);
        // excused here, before the batch ends, a redelivery by the broker after its channel closed is
        // excused too (the excuse would come too late from the task that finds the held copy stale: a
        // redelivery waits for the batches before it, not for that task).
        handedBack.subtract(entries.lazy.filter(\.poison).compactMap { $0.incoming?.messageId })
        transientRequeues.forget(entries.lazy.filter { !$0.transient }.compactMap { $0.incoming?.messageId }
            .filter { !handedBack.contains($0) })
        for messageId in handedBack { transientRequeues.insert(messageId) }
        if let tracing {
            let outboxPublishes = Set(batch.outbox.keys)
            for entry in entries { tracing.finish(entry, outcomes: outcomes, outboxPublishes: outboxPublishes) }
        }
        metrics.batchDuration.record(since: batch.started)
    }

    // MARK: Stages (intake: BatchPipeline+Intake.swift, planning: BatchPipeline+Planning.swift)

    // MARK: Helpers

    func metadata(_ entry: Entry) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        if let incoming = entry.incoming {
            metadata["message_id"] = "\(incoming.messageId)"
            metadata["message_type"] = "\(incoming.type)"
            if !incoming.queue.isEmpty { metadata["queue"] = "\(incoming.queue)" }
            if let saga = incoming.timeoutTarget { metadata["saga"] = "\(saga)" }
        }
        if let delivery = entry.delivery {
            metadata["queue"] = "\(delivery.queue)"
            metadata["delivery_tag"] = "\(delivery.tag.value)"
            // A delivery refused before it became a message (a type nobody handles, a body too large) still
            // names its type: the README promises `message_type` on every record about a message.
            if entry.incoming == nil {
                if let id = delivery.properties.messageId { metadata["message_id"] = "\(id)" }
                if let type = delivery.properties.type { metadata["message_type"] = "\(type)" }
            }
        }
        return metadata
    }
}

extension Duration {
    var timeInterval: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
