import CRabbitMQ
import DedicatedThread
import Foundation
public import Logging
import Synchronization

/// A connection to RabbitMQ over rabbitmq-c, safe to use from any task.
///
/// rabbitmq-c is blocking and not thread-safe, and it services heartbeats only inside its own calls. So
/// each connection is an actor whose executor is a dedicated OS thread: every library call happens on
/// that thread, and between callers' requests a pump on the same thread keeps reading frames (deliveries,
/// confirms, returns, closes) and sending heartbeats. Nothing blocks Swift's cooperative pool.
///
/// Channels: 1 carries synchronous methods (declare, bind, …), 2 publishes in confirm mode, and each
/// consumer gets its own channel, so confirms, deliveries and method replies never get in each other's
/// way and a channel error (404, 406) closes only the channel it happened on. A consumer takes the lowest
/// number free up to the broker's channel_max (`.channelLimit` when none is); a cancelled consumer's
/// channel is closed, and its number reused, once the deliveries it handed out are settled.
///
/// A lost connection (socket error, missed heartbeats, broker restart, closed by an operator) is
/// re-established with exponential backoff and jitter; the exchanges, queues and bindings declared
/// through it and its consumers are declared again (a declaration the broker refuses then is reported in
/// `unrestoredTopology` and tried again until it is accepted). Unconfirmed publishes fail with
/// `.connectionLost` (publish them again); deliveries from the old connection cannot be acknowledged
/// (`.staleDelivery`) and come back redelivered. Reconnect attempts open their socket on a thread of
/// their own, so while the broker is away every call answers at once (`.notConnected`) instead of
/// waiting out a connect timeout.
///
/// Names, routing keys and properties longer than AMQP's 255-byte short strings are refused with
/// `.invalidArgument` before anything is sent.
public actor AMQPConnection {
    public nonisolated let configuration: AMQPConfiguration
    public nonisolated let recovery: RecoveryPolicy
    let executor: DedicatedThreadExecutor
    var logger: Logger

    var session: AMQPSession?
    var closedByClient = false
    var connecting = false
    /// Why the broker blocks this connection's publishes (connection.blocked, sent during a memory or
    /// disk alarm), nil when it does not. A publish on a blocked connection waits for its confirm until
    /// the alarm clears.
    public internal(set) var blockedReason: String?
    /// How many times the connection was re-established.
    public internal(set) var recoveryCount = 0
    public internal(set) var lastError: AMQPError?

    static let controlChannel: UInt16 = 1
    static let publishChannel: UInt16 = 2
    var openChannels: [UInt16: UInt64] = [:]
    var channelEpochCounter: UInt64 = 0
    var confirms = ConfirmTracker()
    var consumers: [UInt16: ConsumerRecord] = [:]
    /// Channels of cancelled consumers, open until the deliveries they handed out are settled.
    var cancelledChannels: [UInt16: UnsettledDeliveries] = [:]
    /// Cancelled consumers' channels with nothing left to settle, for the pump to close once the frames
    /// rabbitmq-c read ahead are handled (see `closeChannelIfSettled`).
    var channelsToClose: Set<UInt16> = []
    /// Why the broker last closed each consumer channel, for the opening it closed: an acknowledgement of
    /// one of its deliveries then says why it is stale (e.g. RabbitMQ's consumer_timeout took them back),
    /// not only that it is. One entry per channel number, so bounded by channel_max.
    var brokerClosedChannels: [UInt16: (epoch: UInt64, error: AMQPError)] = [:]
    var topology = RecordedTopology()
    /// Recorded declarations the broker refused when the connection was re-established, with the reason;
    /// tried again by `topologyRetryTask` (see `AMQPConnection+TopologyRecovery.swift`).
    var unrestored: [UnrestoredDeclaration] = []
    var topologyRetryTask: Task<Void, Never>?
    var assemblies: [UInt16: ContentAssembly] = [:]
    var recentStrings = RecentStrings()
    var pumpTask: Task<Void, Never>?
    /// True while `handleReadAhead` handles queued frames (see there).
    var handlingReadAhead = false
    /// Shuts the socket down when a cancelled publish stays stuck in its write (a resource alarm).
    nonisolated let stuckWrites: StuckWriteGuard

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// The level of the "AMQP connected" record (each connect and reconnect): see `connect`.
    nonisolated let connectedLevel: Logger.Level

    private init(configuration: AMQPConfiguration, recovery: RecoveryPolicy, connectedLevel: Logger.Level,
                 logger: Logger) {
        self.configuration = configuration
        self.recovery = recovery
        self.connectedLevel = connectedLevel
        var logger = logger
        logger[metadataKey: "amqp.url"] = "\(configuration.redactedURL)"
        if let name = configuration.connectionName { logger[metadataKey: "amqp.connection"] = "\(name)" }
        self.logger = logger
        self.stuckWrites = StuckWriteGuard(logger: logger)
        self.executor = DedicatedThreadExecutor(name: "amqp \(configuration.connectionName ?? configuration.host)",
                                                stackSize: Self.threadStackSize(frameMax: configuration.frameMax))
    }

    deinit {
        executor.shutdown()
    }

    /// Connects, or throws when the first attempt fails (later losses are recovered automatically).
    /// `connectedLevel` is the level of the "AMQP connected" record: info for a long-lived connection (an
    /// endpoint's, an operator command's), debug for a client that may connect once per request
    /// (`MessageSession.connect`), whose log it would otherwise fill. A recovery is logged at info either
    /// way ("AMQP connection recovered").
    public static func connect(
        _ configuration: AMQPConfiguration, recovery: RecoveryPolicy = .default,
        connectedLevel: Logger.Level = .info, logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        let connection = AMQPConnection(configuration: configuration, recovery: recovery,
                                        connectedLevel: connectedLevel, logger: logger)
        try await connection.start()
        return connection
    }

    /// Connects to an AMQP URI (see `AMQPConfiguration`).
    public static func connect(
        url: String, connectionName: String? = nil, recovery: RecoveryPolicy = .default,
        connectedLevel: Logger.Level = .info, logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        var configuration = try AMQPConfiguration(url: url)
        if let connectionName { configuration.connectionName = connectionName }
        return try await connect(configuration, recovery: recovery, connectedLevel: connectedLevel, logger: logger)
    }

    private func start() throws {
        try establish()
        pumpTask = Task { await self.pump() }
    }

    /// True while a connection to the broker is open.
    public var isConnected: Bool { session?.isOpen == true }

    /// How deep header tables and arrays may nest in a delivery: deeper values arrive replaced by a string
    /// that says so. (rabbitmq-c releases after 0.11 refuse frames nested deeper than 100.)
    public static let maximumHeaderNesting = 100

    /// The connection thread's stack. rabbitmq-c 0.11 decodes nested header tables and arrays recursively,
    /// with no depth limit, inside its read calls on this thread: a header of arrays nested as deep as one
    /// frame allows (5 bytes a level) must not overflow it. Measured (debug build): 26,000 levels, a full
    /// 128 KiB frame, overflowed 1.8 MiB and fit in 2.7 MiB, so about 100 bytes a level; 256 a level
    /// leaves room. Reserved address space, touched only by such a frame.
    static func threadStackSize(frameMax: Int) -> Int {
        let frame = frameMax > 0 ? frameMax : AMQPConfiguration.defaultFrameMax
        return max(1 << 20, (1 << 20) + frame / 5 * 256)
    }

    /// The heartbeat interval the broker agreed to, in seconds (0: none).
    public var negotiatedHeartbeat: Int { session?.heartbeat ?? 0 }

    /// The largest frame the broker agreed to, in bytes (0 while not connected). A message's properties
    /// must fit in one frame.
    public var negotiatedFrameMax: Int { session?.frameMax ?? 0 }

    /// The frame_max of the latest connection established, the first or a recovered one (kept while the
    /// connection is being recovered; 0 before the first). Readable from any thread without waiting for the
    /// actor: for callers that check messages against it before they publish. A broker restarted with
    /// another `frame_max` negotiates it anew at recovery, so a copy of the first value goes stale.
    public nonisolated var lastNegotiatedFrameMax: Int { frameMaxNegotiated.load(ordering: .relaxed) }
    private nonisolated let frameMaxNegotiated = Atomic<Int>(0)

    /// The broker's server properties (product, version, capabilities).
    public var serverProperties: FieldTable { session?.serverProperties ?? [:] }

    /// Waits until the connection is open (after a recovery), or throws `.notConnected` after `timeout`.
    public func waitUntilConnected(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !isConnected {
            if closedByClient { throw AMQPError(.closed, message: "connection closed by the client") }
            if ContinuousClock.now >= deadline {
                throw lastError ?? AMQPError(.notConnected, message: "not connected after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Closes the connection: consumers end, unconfirmed publishes fail with `.closed`.
    public func close() {
        guard !closedByClient else { return }
        closedByClient = true
        let error = AMQPError(.closed, message: "connection closed by the client")
        confirms.failAll(error)
        for (_, consumer) in consumers { consumer.buffer.finish() }
        consumers.removeAll()
        forgetCancelledChannels()
        // A blocked connection's close-ok would not come before the alarm clears (the broker does not read
        // from it), so the close handshake would wait the whole RPC timeout: drop the socket instead.
        if blockedReason != nil { session?.markClosed() }
        session?.closeQuietly()
        session = nil
        openChannels.removeAll()
        pumpTask?.cancel()
        topologyRetryTask?.cancel()
        logger.debug("AMQP connection closed")
    }

    // MARK: Connection lifecycle

    /// Opens a session (unless `opened` is one already) and restores what the previous one had:
    /// channels, topology, consumers.
    func establish(_ opened: AMQPSession? = nil) throws {
        connecting = true
        defer { connecting = false }
        let session = try opened ?? AMQPSession(configuration: configuration)
        self.session = session
        // A new connection starts unblocked; during an alarm the broker blocks it again at its first publish.
        blockedReason = nil
        openChannels.removeAll()
        assemblies.removeAll()
        forgetCancelledChannels()
        do {
            // The broker's own channel_max (rabbitmq.conf) can be 1 too; see `channelMaxOfOne`.
            if session.channelMax < 2 {
                throw AMQPError(.handshakeFailed, message: "the broker negotiated channel_max \(session.channelMax): "
                    + AMQPConfiguration.channelMaxOfOne + "; retrying will not help", operation: "channel.open 2")
            }
            try ensureChannel(Self.publishChannel)
            // Before the consumers and before anything is published on the new connection (this runs on
            // the connection's thread without suspending, so no caller's publish comes in between).
            try restoreTopology()
            endConsumersAboveChannelMax(of: session)
            for channel in consumers.keys.sorted() {
                do {
                    try startConsumerNow(channel: channel)
                } catch let error as AMQPError where error.code == .channelClosed {
                    guard let consumer = consumers.removeValue(forKey: channel) else { continue }
                    logger.error("AMQP consumer could not be restored after recovery", metadata: [
                        "amqp.queue": "\(consumer.queue)", "error": "\(error)",
                    ])
                    consumer.buffer.finish(throwing: error)
                }
            }
        } catch {
            session.closeQuietly()
            self.session = nil
            // Which of these failures a retry can fix: `AMQPError.setUp` decides, as `handshake` does for the login.
            throw (error as? AMQPError).map { AMQPError.setUp($0, configuration: configuration) } ?? error
        }
        lastError = nil
        frameMaxNegotiated.store(session.frameMax, ordering: .relaxed)
        logger.log(level: connectedLevel, "AMQP connected", metadata: [
            "amqp.heartbeat": "\(session.heartbeat)", "amqp.frame_max": "\(session.frameMax)",
        ])
    }

    /// A broker restarted with a lower channel_max refuses channels above it by closing the whole
    /// connection (530), so restoring a consumer on such a channel would fail every recovery attempt, and
    /// the other consumers and the publishing with it. Those consumers end instead, with `.channelLimit`;
    /// their numbers cannot change, because their `AMQPConsumer` handles cancel by channel.
    private func endConsumersAboveChannelMax(of session: AMQPSession) {
        for channel in consumers.keys.sorted() where channel > session.channelMax {
            guard let consumer = consumers.removeValue(forKey: channel) else { continue }
            let error = AMQPError(
                .channelLimit,
                message: "the broker now negotiates channel_max \(session.channelMax), below this consumer's channel "
                    + "\(channel): it cannot be restored; consume again to get a channel within the limit, or raise channel_max",
                operation: "basic.consume \(consumer.queue)")
            logger.error("AMQP consumer could not be restored after recovery", metadata: [
                "amqp.queue": "\(consumer.queue)", "amqp.channel": "\(channel)", "error": "\(error)",
            ])
            consumer.buffer.finish(throwing: error)
        }
    }

    func connectionLost(_ error: AMQPError) {
        guard let session else { return }
        session.markClosed()
        self.session = nil
        openChannels.removeAll()
        assemblies.removeAll()
        forgetCancelledChannels()
        lastError = error
        confirms.failAll(error)
        if closedByClient { return }
        if !recovery.isEnabled {
            for (_, consumer) in consumers { consumer.buffer.finish(throwing: error) }
            consumers.removeAll()
        }
        logger.warning("AMQP connection lost", metadata: ["error": "\(error)"])
    }

    /// Cancelled consumers' channels went with the connection: the broker redelivers what was unsettled
    /// on them, and their numbers are free again.
    private func forgetCancelledChannels() {
        cancelledChannels.removeAll()
        channelsToClose.removeAll()
    }

    /// Drops the socket without a close handshake, as a network failure would (for tests of recovery).
    public func simulateNetworkFailure() {
        guard let session else { return }
        shutdown(session.socketFD, Int32(SHUT_RDWR))
    }

    // MARK: Channels

    func requireSession(_ operation: String) throws -> AMQPSession {
        guard let session, session.isOpen else {
            if closedByClient { throw AMQPError(.closed, message: "connection closed by the client", operation: operation) }
            throw AMQPError(.notConnected, message: lastError.map { "not connected (\($0.message))" } ?? "not connected",
                            operation: operation)
        }
        return session
    }

    func ensureChannel(_ channel: UInt16) throws {
        guard openChannels[channel] == nil else { return }
        let session = try requireSession("channel.open")
        try session.openChannel(channel)
        channelEpochCounter += 1
        openChannels[channel] = channelEpochCounter
        if channel == Self.publishChannel {
            try session.confirmSelect(channel)
            confirms.failAll(AMQPError(.channelClosed, message: "publish channel reopened"))
        }
    }

    /// Runs a synchronous method on `channel`, mapping failures: a channel error closes only that
    /// channel; a connection error starts recovery. Frames read ahead are handled first; when the broker
    /// closed `channel` (a consumer's) among them, the method fails with that close, as it would had the
    /// close been its reply.
    func onChannel<T>(_ channel: UInt16, _ operation: String, _ body: (AMQPSession) throws -> T) throws -> T {
        let epoch = openChannels[channel]
        let before = session
        handleReadAhead()
        // The publish channel is the exception: a close there failed the publishes before it, and the next
        // ones go on a fresh channel. So is a connection lost meanwhile (a consumer's restart failed): that
        // forgot every channel, and the method fails as not connected below, not as a channel close (a
        // caller would take that for the broker refusing it, e.g. a declare, and not try again).
        if let epoch, openChannels[channel] != epoch, channel != Self.publishChannel, let session, session === before,
           session.isOpen {
            // Already forgotten (and its consumer started again) by the pump's handling of the close.
            if let close = brokerClosedChannels[channel], close.epoch == epoch { throw close.error.during(operation) }
            // Closed by this client meanwhile: a cancelled consumer's last delivery handed back, a consumer
            // the broker cancelled.
            throw AMQPError(.channelClosed, message: "the channel was closed meanwhile (its consumer ended)", operation: operation)
        }
        do {
            try ensureChannel(channel)
            let session = try requireSession(operation)
            return try body(session)
        } catch let error as AMQPError {
            switch error.code {
            case .channelClosed:
                // Its reason, for acknowledgements of deliveries that came on it.
                if let epoch = openChannels[channel], channel > Self.publishChannel, error.replyCode != nil {
                    brokerClosedChannels[channel] = (epoch, error)
                }
                openChannels.removeValue(forKey: channel)
                cancelledChannels.removeValue(forKey: channel)
                channelsToClose.remove(channel)
                if channel == Self.publishChannel { confirms.failAll(error) }
            case .connectionLost, .connectionClosed:
                if !connecting { connectionLost(error) }
            default: break
            }
            throw error.during(operation)
        }
    }
}

/// A session opened on another thread, handed to the connection's thread: `@unchecked Sendable` because
/// it is used by one thread at a time, the opening thread until it hands it over, then the connection's.
struct SessionHandOver: @unchecked Sendable {
    let session: AMQPSession
}
