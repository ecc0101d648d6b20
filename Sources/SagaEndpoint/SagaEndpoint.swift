import AMQPTransport
import Foundation
public import Logging
public import Metrics
import SagaStore
public import Sagas
public import ServiceLifecycle
import Synchronization
public import Tracing

/// A saga endpoint: consumes its input queues, deduplicates by message id, runs sagas and stateless
/// handlers, commits state, inbox, outbox and timeouts in one SQLite transaction, publishes with
/// confirms, and only then acknowledges.
///
/// It is a swift-service-lifecycle `Service`: run it in a `ServiceGroup`, which ends it gracefully on
/// SIGTERM (it stops consuming, finishes the batch in flight, and returns).
public final class SagaEndpoint: Service, Sendable {
    public let configuration: EndpointConfiguration
    public let registry: HandlerRegistry
    let logger: Logger
    private let metricsFactory: any MetricsFactory
    let tracing: PipelineTracing?
    let health: EndpointHealth
    /// Tests only: stretches the moment between `stopping` and the consumers' cancel.
    let consumerCancelDelay = TestDelay()
    /// Tests only: delays each delivery a consumer's forwarder moves into the batch loop once the endpoint is
    /// stopping (the deliveries that came before the consumer's cancel).
    let forwardingDelayWhileStopping = TestDelay()

    /// `metricsFactory` receives the endpoint's metrics; by default the one bootstrapped in
    /// `MetricsSystem`. `tracer` records the endpoint's spans; by default the one bootstrapped in
    /// `InstrumentationSystem` (bootstrap it before creating the endpoint). Without one, no spans are
    /// made and the incoming `traceparent`/`tracestate` are still carried into emitted messages.
    public init(configuration: EndpointConfiguration, registry: HandlerRegistry, logger: Logger,
                metricsFactory: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil) {
        self.configuration = configuration
        self.registry = registry
        var logger = logger
        logger[metadataKey: "endpoint"] = "\(configuration.endpointAddress)"
        self.logger = logger
        self.metricsFactory = metricsFactory ?? MetricsSystem.factory
        self.tracing = PipelineTracing(tracer ?? InstrumentationSystem.tracer)
        self.health = EndpointHealth(factory: self.metricsFactory)
    }

    /// True while the endpoint has its broker connections and its database open and consumes every input
    /// queue: false before it has connected, while a connection is lost (until it is recovered), while the
    /// broker refuses to declare part of the topology again after a recovery (until it accepts it), while the
    /// database cannot be written (until a batch writes it again), while an input queue is not consumed
    /// (until it is consumed again), and after it stopped.
    public var isReady: Bool { notReadyReason == nil }

    /// Why the endpoint is not ready, for operators (`/health/ready`); nil when it is ready. It quotes the
    /// broker's and SQLite's text (vhost, queue and database names as given): an AMQP URL's password in it
    /// is hidden, as in the logs. Control characters are left to whoever writes it out.
    public var notReadyReason: String? { unredactedNotReadyReason.map { AMQPConfiguration.redactingURLs(in: $0) } }

    private var unredactedNotReadyReason: String? {
        if isStopping { return "shutting down: finishing the messages in flight" }
        if !health.ready.load(ordering: .relaxed) {
            return health.connectionTrouble ?? "broker connection or database not available"
        }
        if let problem = health.databaseTrouble {
            return "the database cannot be written (\(problem)); messages are kept and retried until it can"
        }
        let lost = health.lostConsumers
        guard !lost.isEmpty else { return nil }
        return "not consuming " + lost.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }
            .joined(separator: ", ") + "; trying again"
    }

    /// True once a graceful shutdown has started (it stops consuming and finishes the batches in flight).
    public var isStopping: Bool { health.stopping.load(ordering: .relaxed) }

    /// Throws `EndpointConfigurationError` at once, before it opens or declares anything, for input queues it
    /// cannot consume (none, or an empty name) or a prefetch of 0.
    public func run() async throws {
        // Before anything is opened or declared: a wrong queue list must not leave queues on the broker.
        try configuration.check()
        let dispatcher = MessageDispatcher(registry: registry, endpointAddress: configuration.endpointAddress)
        let metrics = EndpointMetrics(factory: metricsFactory)
        // Opened, and closed below, on the stores' own threads: SQLite blocks (a migration for seconds, the
        // last close checkpoints the WAL), which must not happen on the cooperative pool.
        let store = try await StoreWorker.open(
            path: configuration.databasePath, durable: configuration.durableCommits,
            busyTimeout: configuration.databaseBusyTimeout, dispatcher: dispatcher,
            handlerTiming: HandlerTiming(timer: metrics.handlerDuration), rerunCounter: metrics.handlersRerun,
            logger: logger)
        let stateReader: SagaStateReader?
        do {
            stateReader = configuration.handlersAheadOfCommit
                ? try await SagaStateReader.open(path: configuration.databasePath,
                                                 busyTimeout: configuration.databaseBusyTimeout, logger: logger)
                : nil
        } catch {
            await store.close()
            throw error
        }
        let backlogReader: BacklogReader
        do {
            backlogReader = try await BacklogReader.open(path: configuration.databasePath,
                                                         busyTimeout: configuration.databaseBusyTimeout, logger: logger)
        } catch {
            await stateReader?.close()
            await store.close()
            throw error
        }
        await logStoredWork(backlogReader)
        do {
            try await connectAndServe(dispatcher: dispatcher, store: store, stateReader: stateReader,
                                      backlogReader: backlogReader, metrics: metrics)
        } catch {
            await Self.close(store, stateReader, backlogReader)
            throw error
        }
        await Self.close(store, stateReader, backlogReader)
    }

    private static func close(_ store: StoreWorker, _ stateReader: SagaStateReader?, _ backlogReader: BacklogReader) async {
        await stateReader?.close()
        await backlogReader.close()
        await store.close()
    }

    private func connectAndServe(dispatcher: MessageDispatcher, store: StoreWorker, stateReader: SagaStateReader?,
                                 backlogReader: BacklogReader, metrics: EndpointMetrics) async throws {
        guard let consumerConnection = try await connectUnlessShuttingDown(role: "consume") else { return }
        let publisherConnection: AMQPConnection
        do {
            guard let connection = try await connectUnlessShuttingDown(role: "publish") else {
                await consumerConnection.close()
                return
            }
            publisherConnection = connection
        } catch {
            await consumerConnection.close()
            throw error
        }
        // Closed before returning (not in a detached task): acks and publishes are on the wire and the
        // broker sees a clean close, even when the process exits right after.
        do {
            try await serve(dispatcher: dispatcher, store: store, stateReader: stateReader,
                            backlogReader: backlogReader, metrics: metrics,
                            consumerConnection: consumerConnection, publisherConnection: publisherConnection)
        } catch {
            health.ready.store(false, ordering: .relaxed)
            await consumerConnection.close()
            await publisherConnection.close()
            throw error
        }
        health.ready.store(false, ordering: .relaxed)
        await consumerConnection.close()
        await publisherConnection.close()
        // The lifecycle lines are notices: an operator who logs at notice (README's example config) sees
        // the endpoint start and stop, and not every message.
        logger.notice("endpoint stopped")
    }

    private func serve(dispatcher: MessageDispatcher, store: StoreWorker, stateReader: SagaStateReader?,
                       backlogReader: BacklogReader,
                       metrics: EndpointMetrics, consumerConnection: AMQPConnection,
                       publisherConnection: AMQPConnection) async throws {
        let connections = [consumerConnection, publisherConnection]
        let declared: Void? = try await againAfterConnectionLoss("declaring the topology and the queues", on: connections) {
            try await declareInputQueuesOutsideTopology(on: [publisherConnection, consumerConnection])
            try await declareTopology(on: [consumerConnection, publisherConnection])
            try await declareQueues(on: publisherConnection)
        }
        guard declared != nil else { return }

        // Outgoing messages are checked against the frame size the broker agreed to before they are stored,
        // and error-queue copies before they are sent: the latest, read at each use (`OutgoingLimits.frameMax`).
        await store.limitOutgoing(to: publisherConnection)
        let work = WorkQueue()
        let pipeline = BatchPipeline(
            configuration: configuration, dispatcher: dispatcher, store: store,
            handlersAhead: stateReader.map {
                HandlersAhead(dispatcher: dispatcher, reader: $0, timing: HandlerTiming(timer: metrics.handlerDuration))
            },
            publisher: publisherConnection,
            consumer: consumerConnection, metrics: metrics, health: health, logger: logger, tracing: tracing,
            work: work)
        let dueInFlight = InFlightSet()
        var consumers: [(queue: String, consumer: AMQPConsumer?)] = []
        for queue in configuration.inputQueues {
            // Each queue on its own: a consumer opened before the loss is restored by the recovery.
            guard let consumer = try await againAfterConnectionLoss("consuming queue '\(queue)'", on: [consumerConnection], {
                try await consumeAtStart(queue, on: consumerConnection)
            }) else { return }
            consumers.append((queue, consumer))
        }
        let activeConsumers = InputConsumers(consumers.map(\.consumer))
        // Ready once every input queue is consumed, not before (raised after the declarations, it said 200
        // while the consumers were still being opened).
        health.ready.store(true, ordering: .relaxed)
        var started: Logger.Metadata = [
            "queues": "\(configuration.inputQueues.joined(separator: ","))",
            "database": "\(Self.absolutePath(configuration.databasePath))",
            "sagas": "\(registry.sagaTypes.joined(separator: ","))", "amqp.url": "\(publisherConnection.configuration.redactedURL)",
        ]
        // `bank` hosts only stateless handlers: with `sagas=` alone it read as hosting nothing.
        let handled = registry.statelessMessageTypes
        if !handled.isEmpty { started["handlers"] = "\(handled.joined(separator: ","))" }
        logger.notice("endpoint started", metadata: started)

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                let forwarders = Countdown(consumers.count)
                for (slot, (queue, consumer)) in consumers.enumerated() {
                    group.addTask {
                        await self.forward(consumer, of: queue, to: work, on: consumerConnection,
                                           consuming: activeConsumers, slot: slot)
                        if forwarders.decrement() == 0 { work.finish() }
                    }
                }
                group.addTask { await self.pollDueTimeouts(store: store, work: work, inFlight: dueInFlight) }
                group.addTask {
                    await self.housekeeping(store: store, backlogReader: backlogReader, publisher: publisherConnection,
                                            metrics: metrics)
                }
                group.addTask {
                    await self.health.watch([consumerConnection, publisherConnection], logger: self.logger)
                }

                let finishingTasks = FinishingTasks()
                await withTaskCancellationHandler {
                    // Three stages: while one batch publishes and waits for its confirms, the next one runs
                    // its transaction (on the SQLite thread), and the one after that its handlers (on the
                    // pool, `HandlersAhead`). A redelivery, or every batch with handlers ahead turned off,
                    // takes two: handlers and transaction together on the SQLite thread, while the batch
                    // before publishes (`BatchRoute`). Batches commit and settle in order, so an ack with
                    // `multiple` never covers a delivery of a later, unsettled batch.
                    var committing: Task<[BatchPipeline.PreparedBatch], Never>?
                    var finishing: Task<Void, Never>?
                    var finishingBefore: Task<Void, Never>?
                    // The batch before, when its handlers ran ahead: its commit may still be running.
                    var previousPending: BatchPipeline.PendingBatch?
                    while let batch = await work.next(limit: max(1, configuration.batchSize)) {
                        let prepared: Task<[BatchPipeline.PreparedBatch], Never>
                        let redelivery = pipeline.containsRedelivery(batch)
                        let route = BatchRoute.choose(redelivery: redelivery,
                                                      handlersAheadEnabled: configuration.handlersAheadOfCommit)
                        if route == .handlersInTransaction {
                            // Before a redelivery everything settles first (see `prepare`); otherwise the
                            // commit before this one must have ended.
                            if redelivery { await finishing?.value } else { _ = await committing?.value }
                            let stages = await pipeline.prepare(batch)
                            prepared = Task { stages }
                            previousPending = nil
                            // The next batch collects what arrives while this one publishes: fewer, larger
                            // commits (each costs an fsync) and less latency than taking it right away.
                            await finishing?.value
                        } else {
                            let pending = await pipeline.handle(batch, after: previousPending)
                            previousPending = pending
                            let previous = committing
                            prepared = Task {
                                _ = await previous?.value
                                return [await pipeline.commit(pending)]
                            }
                        }
                        let previousCommit = committing
                        let previousFinish = finishing
                        committing = prepared
                        finishing = Task {
                            let stages = await prepared.value
                            await previousFinish?.value
                            for stage in stages { await pipeline.finish(stage) }
                            let done = batch.compactMap { source -> String? in
                                if case .due(let row) = source { return row.timeoutId }
                                return nil
                            }
                            // A row whose error-queue copy was not confirmed stays due: not handed on
                            // again before its hold ends (`UnconfirmedDueRows`).
                            if !done.isEmpty {
                                dueInFlight.remove(done, keeping: pipeline.unconfirmedDueRows.takeHolds(done))
                            }
                        }
                        finishingTasks.add(finishing!)
                        // Bounded: the next batch's handlers overlap this batch's transaction and the
                        // previous batch's publishing, no more.
                        _ = await previousCommit?.value
                        await finishingBefore?.value
                        finishingBefore = previousFinish
                    }
                    await finishing?.value
                } onCancel: {
                    work.finish()
                    // The batches in flight get a moment to finish (confirms normally come in
                    // milliseconds, and an ack now saves a redelivery); then they stop waiting.
                    Task {
                        try? await Task.sleep(for: FinishingTasks.graceOnCancel)
                        finishingTasks.cancelAll()
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            // Stop consuming; the deliveries already received are processed, then the loop ends: each
            // forwarder returns once its consumer's deliveries are moved, and the last one ends the intake.
            // (Ended here, right after the cancels, a delivery a forwarder moved after the loop had drained
            // was never processed, and went back to its queue only when the connection closed.)
            self.health.stopping.store(true, ordering: .relaxed)
            self.logger.notice("graceful shutdown: stopping consumers")
            Task {
                await self.consumerCancelDelay.wait()
                for consumer in activeConsumers.all { try? await consumer.cancel() }
            }
        }
        // Deliveries kept to be processed again (`HeldDeliveries`) go back to their queues now, while the
        // connection they came on is still open, and only once no consumer of this endpoint can take them
        // again. A cancellation has not cancelled the consumers (a graceful shutdown has: again, it does nothing).
        for consumer in activeConsumers.all { try? await consumer.cancel() }
        await pipeline.handBackHeld()
    }

    /// Connects, retrying with a clear log line while the broker is unreachable (no crash loop); nil when
    /// a graceful shutdown comes first. Before, a SIGTERM while the broker was down waited out the
    /// group's shutdown limit and then failed the endpoint with a cancellation.
    private func connectUnlessShuttingDown(role: String) async throws -> AMQPConnection? {
        var amqp = try AMQPConfiguration(url: configuration.amqpURL)
        amqp.connectionName = "\(configuration.connectionName)-\(role)"
        let (settings, logger) = (amqp, self.logger)
        do {
            let connection = try await cancelWhenGracefulShutdown {
                try await AMQPConnection.connectRetrying(settings, logger: logger)
            }
            // Connected just as the shutdown began: stop here rather than start consuming.
            guard !Task.isShuttingDownGracefully else {
                await connection.close()
                return nil
            }
            return connection
        } catch where Task.isShuttingDownGracefully {
            logger.notice("graceful shutdown before the broker was reached; stopping", metadata: [
                "amqp.url": "\(settings.redactedURL)"])
            return nil
        }
    }
}

extension SagaEndpoint {
    /// `path` from the working directory (a relative database path names a different file in each folder
    /// a process starts from).
    static func absolutePath(_ path: String) -> String {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("/") else { return path }
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }
}

/// Counts running consumer forwarders down; the last one to end finishes the work queue.
final class Countdown: Sendable {
    private let value: Mutex<Int>
    init(_ value: Int) { self.value = Mutex(value) }
    func decrement() -> Int { value.withLock { $0 -= 1; return $0 } }
}
