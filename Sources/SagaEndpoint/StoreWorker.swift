import AMQPTransport
import DedicatedThread
import Foundation
import Logging
import Metrics
import SagaStore
import Sagas

/// The endpoint's SQLite store on a dedicated thread: SQLite calls block (fsync), so they never run on
/// Swift's cooperative pool. All writes of a batch happen in one immediate transaction with a savepoint
/// per message, so a failing message rolls back only itself.
actor StoreWorker {
    private let executor: DedicatedThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    let store: SagaStore
    private let dispatcher: MessageDispatcher
    private let handlerTiming: HandlerTiming
    let logger: Logger
    /// Outbox rows a batch in its publish stage is sending. A copy of their incoming message processed
    /// meanwhile must not send them again: the batch that is publishing settles first. Checked here,
    /// right after the outbox is read, because confirmed rows are marked dispatched on this actor (by the
    /// next batch's transaction or a flush, `DispatchMarks`) before they are forgotten: a row is either still
    /// listed here or no longer undispatched.
    nonisolated let publishing = InFlightSet()
    /// Confirmed outbox rows to mark dispatched with the next transaction (`DispatchMarks`).
    nonisolated let dispatchMarks = DispatchMarks()
    /// How long confirmed rows wait for a batch's transaction to mark them before they are written alone.
    let markFlushDelay: Duration
    /// Set by `close()`: a flush scheduled before finds the connection closed and does nothing.
    private(set) var closed = false

    /// Messages whose handlers ran ahead of the transaction but had to run again in it.
    private(set) var handlerReruns = 0
    /// Reruns of the pass running now: counted only once its transaction has committed (a batch rolled
    /// back to be retried with savepoints runs its handlers again, which is not another rerun).
    private var rerunsInPass = 0
    private let rerunCounter: Counter?

    /// The largest AMQP frame: outgoing messages whose properties do not fit are refused before they are
    /// stored (`OutgoingLimits`). The publisher's connection's latest, the broker's default before it is set.
    private var frameMax: Int { OutgoingLimits.frameMax(of: publisher) }
    private var publisher: AMQPConnection?

    /// Opens (creating and migrating if needed) the store at `path` on the worker's own thread: a migration
    /// of a large store takes seconds, which must not block the cooperative pool. If opening fails, the
    /// thread ends (an actor whose init throws never runs its `deinit`).
    static func open(path: String, durable: Bool, busyTimeout: Duration = .seconds(5), dispatcher: MessageDispatcher,
                     handlerTiming: HandlerTiming = HandlerTiming(timer: nil), rerunCounter: Counter? = nil,
                     markFlushDelay: Duration = .milliseconds(50),
                     logger: Logger, threadName: String = "sqlite") async throws -> StoreWorker {
        try await DedicatedThreadExecutor.starting(name: threadName) { executor in
            try StoreWorker(executor: executor, path: path, durable: durable, busyTimeout: busyTimeout,
                            dispatcher: dispatcher, handlerTiming: handlerTiming, rerunCounter: rerunCounter,
                            markFlushDelay: markFlushDelay, logger: logger)
        }
    }

    /// WAL size (in pages) at which it starts over; the checkpointer copies a tenth of it at a time.
    static let checkpointPages = 10_000
    /// Checkpoints the WAL on a thread of its own; nil for an in-memory database.
    let checkpointer: WALCheckpointer?

    private init(executor: DedicatedThreadExecutor, path: String, durable: Bool, busyTimeout: Duration,
                 dispatcher: MessageDispatcher, handlerTiming: HandlerTiming, rerunCounter: Counter?,
                 markFlushDelay: Duration, logger: Logger) throws {
        self.rerunCounter = rerunCounter
        self.markFlushDelay = markFlushDelay
        self.executor = executor
        var options = SagaStore.Options()
        options.synchronous = durable ? .full : .normal
        options.busyTimeout = busyTimeout
        // 32 MiB keeps the indexes' upper levels and recent leaves in memory: with a million live sagas
        // the default 2 MiB made nearly every lookup read pages back from the OS.
        options.cacheSizeKiB = 32 * 1024
        // A batch of messages with random ids writes several pages per message to the WAL, so the default
        // 4 MiB checkpoint threshold made nearly every commit also copy its pages into the database file
        // and sync it. Checkpointing every 40 MiB copies a hot index page once for many commits (about
        // 14% more throughput in the bench). This is the threshold the writer's commits keep if the
        // background checkpointer below cannot be opened.
        options.walAutocheckpointPages = Self.checkpointPages
        self.store = try SagaStore(path: path, options: options, logger: logger)
        // The checkpoints themselves run on a thread of their own (`WALCheckpointer`): the commit that
        // crossed the threshold used to copy and sync it all, 20–35 ms every half second at 4,000 msg/s,
        // holding up every message behind it. The writer checkpoints itself only once the WAL reaches
        // three times the threshold (that thread fell behind), so the WAL stays under about 120 MiB. That
        // thread copies a tenth of the threshold at a time, and the WAL starts over at the threshold
        // (`WALHook`: one large copy and sync made the commits beside it wait).
        if path.isEmpty || path == ":memory:" {
            self.checkpointer = nil
        } else {
            do {
                let checkpointer = try WALCheckpointer(path: path, synchronous: options.synchronous, logger: logger)
                store.connection.checkpointInBackground(checkpointer, after: Self.checkpointPages,
                                                        backstop: 3 * Self.checkpointPages)
                self.checkpointer = checkpointer
            } catch {
                logger.warning("cannot open the background WAL checkpointer; commits checkpoint themselves",
                               metadata: ["path": "\(path)", "error": "\(error)"])
                self.checkpointer = nil
            }
        }
        self.dispatcher = dispatcher
        self.handlerTiming = handlerTiming
        self.logger = logger
    }

    deinit {
        // The store closes its SQLite handle when it is released, if `close()` has not.
        executor.shutdown()
    }

    /// Closes the SQLite connection here, on the worker's thread: closing checkpoints the WAL (up to
    /// 40 MiB written), which would otherwise run on whatever thread releases the worker last. The
    /// background checkpointer stops first (after the checkpoint it may be running). Dispatch marks still
    /// pending are written first; marks added after this are lost (the endpoint closes the store only once
    /// every batch has finished), which means only a re-send of their rows after a restart.
    func close() {
        writeAlone(dispatchMarks.take())
        closed = true
        checkpointer?.stop()
        store.close()
    }

    /// The batch's results, and whether its transaction (and with it `marks`) committed.
    private func process(_ items: [WorkItem], now: Date,
                         marks: DispatchMarks.Pending) -> (results: [WorkResult], committed: Bool) {
        // First without savepoints: a savepoint per message makes SQLite copy every page a message
        // touches into its sub-journal (tens of kilobytes per message), and almost every batch succeeds
        // as a whole. Only when a message fails is the batch rolled back and run again with a savepoint
        // per message, so that the failing one rolls back only itself. Saga handlers only compute state
        // and messages, so running them twice is harmless; stateless handlers ran before (not again).
        var results: [WorkResult] = []
        results.reserveCapacity(items.count)
        var failedMessage: (any Error)?
        rerunsInPass = 0
        do {
            try store.transaction { store in
                // First: an error here (only a storage error can fail it) fails the whole batch.
                try mark(marks, in: store, now: now)
                for item in items {
                    do {
                        results.append(try processOne(item, now: now))
                    } catch {
                        failedMessage = error
                        throw error
                    }
                }
            }
            countReruns()
            return (results, true)
        } catch {
            guard let failedMessage else {
                // The commit itself failed (busy, disk full): nothing of the batch happened.
                return (items.map { _ in .failed(error) }, false)
            }
            if items.count == 1 { return ([.failed(failedMessage)], false) }
        }
        return processWithSavepoints(items, now: now, marks: marks)
    }

    private func processWithSavepoints(_ items: [WorkItem], now: Date,
                                       marks: DispatchMarks.Pending) -> (results: [WorkResult], committed: Bool) {
        var results: [WorkResult] = []
        results.reserveCapacity(items.count)
        rerunsInPass = 0
        do {
            try store.transaction { store in
                try mark(marks, in: store, now: now)
                for item in items {
                    do {
                        results.append(try store.savepoint { try processOne(item, now: now) })
                    } catch {
                        results.append(.failed(error))
                    }
                }
            }
            countReruns()
            return (results, true)
        } catch {
            // The commit itself failed (busy, disk full): nothing of the batch happened.
            return (items.map { _ in .failed(error) }, false)
        }
    }

    /// A replayed timeout (from the error queue) whose saga completed, and another instance holds its
    /// correlation id now: withdrawn, as the store's own timeouts are when their saga completes.
    private func isTimeoutOfAnotherInstance(_ incoming: IncomingMessage) throws -> Bool {
        guard let target = incoming.timeoutTarget,
              let asker = incoming.headers[MessageTranslation.timeoutSagaIdHeader] else { return false }
        // Gone altogether: the saga's runner drops it as a timeout of a completed saga.
        guard let live = try store.loadSaga(type: target.sagaType, correlationId: target.correlationId) else { return false }
        return live.sagaId != asker
    }

    private func countReruns() {
        guard rerunsInPass > 0 else { return }
        handlerReruns += rerunsInPass
        rerunCounter?.increment(by: Int64(rerunsInPass))
        rerunsInPass = 0
    }

    private func processOne(_ item: WorkItem, now: Date) throws -> WorkResult {
        let incoming = item.incoming
        if let deferral = item.deferral {
            // A due row that is parked again is replaced (a saga timeout keeps its id: its message id).
            // If it is gone (its saga completed in the batch that failed it), it is not brought back.
            if let row = item.timeoutRow, try !store.deleteTimeout(row) { return .withdrawn }
            try store.scheduleTimeout(deferral)
            // Its failure count is kept while it waits, however long (purgeFailures).
            try store.markRetry(messageId: incoming.messageId, dueAt: deferral.dueAt)
            return .deferred
        }
        // A due row is taken first, before any handler result is used: the poller read it before this
        // batch, and the saga may have completed since (a new instance can even hold its key by now).
        // If the message fails, the savepoint puts the row back.
        if let row = item.timeoutRow, try !store.deleteTimeout(row) {
            if item.wasRedelivered { try store.clearDeliveries(messageId: incoming.messageId) }
            return .withdrawn
        }
        if try isTimeoutOfAnotherInstance(incoming) {
            if item.wasRedelivered { try store.clearDeliveries(messageId: incoming.messageId) }
            return .withdrawn
        }
        if let speculation = item.speculation, let result = try apply(speculation, of: item, now: now) {
            return result
        }
        // The inbox row comes first: one statement tells a duplicate, and the savepoint removes the row
        // again if the handling fails.
        if try !store.recordInboxIfAbsent(messageId: incoming.messageId, queue: incoming.queue, at: now) {
            return try duplicate(item)
        }
        if item.speculation != nil {
            // Its handlers ran ahead on a state that has changed since: they run again, here.
            rerunsInPass += 1
        }
        let invocations = try handlerTiming.sagas {
            try dispatcher.dispatchToSagas(incoming, persistence: SQLitePersistence(store: store), now: now,
                                           tracing: item.tracing)
        }
        return try processed(item, invocations: invocations, now: now)
    }

    /// Applies what the sagas did before the transaction, if every instance they read is unchanged: then
    /// running them here would do exactly the same. Nil when something they read has changed since (the
    /// previous batch or another process wrote it): the caller runs them here instead.
    private func apply(_ speculation: SagaSpeculation, of item: WorkItem, now: Date) throws -> WorkResult? {
        for read in speculation.reads {
            let current = try store.sagaIdentity(type: read.key.sagaType, correlationId: read.key.correlationId)
            guard current.map({ SagaIdentity(sagaId: $0.sagaId, version: $0.version, state: $0.state) }) == read.identity else {
                return nil
            }
        }
        let incoming = item.incoming
        switch speculation.outcome {
        case .failed(let error):
            if error is UnreadSagaState { return nil }
            if try store.inboxContains(messageId: incoming.messageId) { return try duplicate(item) }
            // As if the handler threw here: the batch is retried with a savepoint per message.
            throw error
        case .ran(let invocations, let writes):
            if try !store.recordInboxIfAbsent(messageId: incoming.messageId, queue: incoming.queue, at: now) {
                return try duplicate(item)
            }
            let persistence = SQLitePersistence(store: store)
            for write in writes {
                switch write {
                case .insert(let saga): try persistence.insertSaga(saga)
                case .update(let saga, let expectedVersion): try persistence.updateSaga(saga, expectedVersion: expectedVersion)
                case .delete(let key, let expectedVersion): try persistence.deleteSaga(key, expectedVersion: expectedVersion)
                }
            }
            return try processed(item, invocations: invocations, now: now)
        }
    }

    /// A message seen before: its outbox rows of the first processing that were never confirmed.
    private func duplicate(_ item: WorkItem) throws -> WorkResult {
        let messageId = item.incoming.messageId
        // Copies of one message id share a delivery count; a copy that is dealt with ends it too, or
        // crashes while copies are in flight would add up until a duplicate looked like poison.
        if item.wasRedelivered { try store.clearDeliveries(messageId: messageId) }
        let pending = try store.outbox(forIncoming: messageId).filter {
            $0.dispatchedAt == nil && !publishing.contains($0.messageId)
        }
        return .duplicate(undispatched: pending)
    }

    private func checkNotFound(_ invocations: [SagaInvocation]) throws {
        for invocation in invocations {
            if case .notFound(let policy) = invocation.outcome, policy != .discard {
                // Roll back whatever other sagas did with it: the message is handled as a whole later.
                throw NotFound(policy: policy, saga: invocation.saga)
            }
        }
    }

    /// Stores what handling the message produced: outbox rows, timeouts; and forgets its due row,
    /// delivery count and earlier failures.
    private func processed(_ item: WorkItem, invocations: [SagaInvocation], now: Date) throws -> WorkResult {
        let incoming = item.incoming
        try checkNotFound(invocations)
        let outgoing = item.statelessOutgoing + invocations.flatMap(\.outgoing)
        let records = outgoing.enumerated().map { position, message in
            // Commands and replies must reach their queue: a return means it is missing, and the incoming
            // message waits until it exists. An event goes to whoever subscribed, possibly no one (as
            // with NServiceBus's and MassTransit's publish); mandatory, an event nobody had bound a
            // queue for was returned and re-sent forever, holding up its incoming message.
            OutboxRecord(
                messageId: message.messageId, incomingMessageId: incoming.messageId, position: position,
                exchange: message.exchange, routingKey: message.routingKey, mandatory: message.kind != .publish,
                messageType: message.type, correlationId: message.correlationId, replyTo: message.replyTo,
                headers: message.headers, body: message.body, createdAt: now)
        }
        // One at a time: a single INSERT needs no savepoint (the batch's fallback gives each message one).
        // A command a saga sends again under its first id gets a row of its own: rows are keyed by the
        // incoming message, so the earlier row (of another incoming message) is not in the way.
        for record in records { try OutgoingLimits.check(record, frameMax: frameMax) }
        var stored: [OutboxRecord] = []
        stored.reserveCapacity(records.count)
        for record in records { stored += try store.appendOutbox([record]) }
        for timeout in invocations.flatMap(\.timeouts) {
            try store.scheduleTimeout(TimeoutRecord(
                timeoutId: timeout.timeoutId, sagaType: timeout.saga.sagaType,
                correlationId: timeout.saga.correlationId, dueAt: timeout.dueAt, messageType: timeout.type,
                body: timeout.body, headers: timeout.headers, createdAt: now))
        }
        if item.wasRedelivered { try store.clearDeliveries(messageId: incoming.messageId) }
        // Earlier failed attempts no longer matter once the message is processed.
        _ = try store.clearFailure(messageId: incoming.messageId)
        return .processed(outbox: stored, invocations: invocations)
    }

    /// Checks outgoing messages against the frame size `publisher` negotiated, its latest after a recovery.
    func limitOutgoing(to publisher: AMQPConnection) {
        self.publisher = publisher
    }

    /// Processes items, turning a not-found policy (thrown to roll back the savepoint) into a result.
    /// The outbox rows it hands out (a processed message's new rows, the unconfirmed rows of a duplicate's
    /// first processing) are claimed in `publishing` before this returns, still on this actor: housekeeping,
    /// which claims here too, then leaves them to the batch, which releases them once it has marked the
    /// confirmed ones dispatched (see `claimUnconfirmedOutbox`). Claimed only now, for the pass that
    /// committed: a pass rolled back to be run again with savepoints must not leave rows claimed by nobody.
    ///
    /// The transaction also marks the rows of earlier batches whose publishes were confirmed meanwhile
    /// (`DispatchMarks`), and releases them from `publishing` once it has committed. If it does not commit,
    /// they wait for the next one.
    func processBatch(_ items: [WorkItem], now: Date) -> [WorkResult] {
        let marks = dispatchMarks.take()
        let (processed, committed) = process(items, now: now, marks: marks)
        if committed {
            publishing.remove(marks.messageIds)
        } else if dispatchMarks.putBack(marks) {
            scheduleMarkFlush()
        }
        let results = processed.map { result -> WorkResult in
            if case .failed(let error as NotFound) = result { return .notFound(error.policy, saga: error.saga) }
            return result
        }
        for result in results {
            switch result {
            case .processed(let outbox, _) where !outbox.isEmpty: publishing.insert(outbox.map(\.messageId))
            case .duplicate(let undispatched) where !undispatched.isEmpty: publishing.insert(undispatched.map(\.messageId))
            default: continue
            }
        }
        return results
    }
}
