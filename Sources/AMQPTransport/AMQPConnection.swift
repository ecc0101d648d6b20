import CRabbitMQ
import DedicatedThread
import Foundation
public import Logging

/// A connection to RabbitMQ over rabbitmq-c, safe to use from any task.
///
/// rabbitmq-c is blocking and not thread-safe, and it services heartbeats only inside its own calls. So
/// each connection is an actor whose executor is a dedicated OS thread: every library call happens on
/// that thread, and between callers' requests a pump on the same thread keeps reading frames (deliveries,
/// confirms, returns, closes) and sending heartbeats. Nothing blocks Swift's cooperative pool.
///
/// Channels: 1 carries synchronous methods (declare, bind, …), 2 publishes in confirm mode, and each
/// consumer gets its own channel, so confirms, deliveries and method replies never get in each other's
/// way and a channel error (404, 406) closes only the channel it happened on.
///
/// A lost connection (socket error, missed heartbeats, broker restart, closed by an operator) is
/// re-established with exponential backoff and jitter; the exchanges, queues and bindings declared
/// through it and its consumers are declared again. Unconfirmed publishes fail with
/// `.connectionLost` (publish them again); deliveries from the old connection cannot be acknowledged
/// (`.staleDelivery`) and come back redelivered.
public actor AMQPConnection {
    public nonisolated let configuration: AMQPConfiguration
    public nonisolated let recovery: RecoveryPolicy
    private let executor: DedicatedThreadExecutor
    var logger: Logger

    private var session: AMQPSession?
    private var closedByClient = false
    private var connecting = false
    /// How many times the connection was re-established.
    public private(set) var recoveryCount = 0
    public private(set) var lastError: AMQPError?

    static let controlChannel: UInt16 = 1
    static let publishChannel: UInt16 = 2
    private var openChannels: [UInt16: UInt64] = [:]
    private var channelEpochCounter: UInt64 = 0
    private var nextConsumerChannel: UInt16 = 3
    private var confirms = ConfirmTracker()
    private var consumers: [UInt16: ConsumerRecord] = [:]
    private var topology = RecordedTopology()
    private var assemblies: [UInt16: ContentAssembly] = [:]
    private var pumpTask: Task<Void, Never>?

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private init(configuration: AMQPConfiguration, recovery: RecoveryPolicy, logger: Logger) {
        self.configuration = configuration
        self.recovery = recovery
        var logger = logger
        logger[metadataKey: "amqp.url"] = "\(configuration.redactedURL)"
        if let name = configuration.connectionName { logger[metadataKey: "amqp.connection"] = "\(name)" }
        self.logger = logger
        self.executor = DedicatedThreadExecutor(name: "amqp \(configuration.connectionName ?? configuration.host)")
    }

    deinit {
        executor.shutdown()
    }

    /// Connects, or throws when the first attempt fails (later losses are recovered automatically).
    public static func connect(
        _ configuration: AMQPConfiguration, recovery: RecoveryPolicy = .default,
        logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        let connection = AMQPConnection(configuration: configuration, recovery: recovery, logger: logger)
        try await connection.start()
        return connection
    }

    /// Connects to an AMQP URI (see `AMQPConfiguration`).
    public static func connect(
        url: String, connectionName: String? = nil, recovery: RecoveryPolicy = .default,
        logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        var configuration = try AMQPConfiguration(url: url)
        if let connectionName { configuration.connectionName = connectionName }
        return try await connect(configuration, recovery: recovery, logger: logger)
    }

    private func start() throws {
        try establish()
        pumpTask = Task { await self.pump() }
    }

    /// True while a connection to the broker is open.
    public var isConnected: Bool { session?.isOpen == true }

    /// The heartbeat interval the broker agreed to, in seconds (0: none).
    public var negotiatedHeartbeat: Int { session?.heartbeat ?? 0 }

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
        for (_, consumer) in consumers { consumer.continuation.finish() }
        consumers.removeAll()
        session?.closeQuietly()
        session = nil
        openChannels.removeAll()
        pumpTask?.cancel()
        logger.debug("AMQP connection closed")
    }

    // MARK: Connection lifecycle

    /// Opens a session and restores what the previous one had: channels, topology, consumers.
    private func establish() throws {
        connecting = true
        defer { connecting = false }
        let session = try AMQPSession(configuration: configuration)
        self.session = session
        openChannels.removeAll()
        assemblies.removeAll()
        do {
            try ensureChannel(Self.publishChannel)
            for declaration in topology.exchanges.values { try declareExchangeNow(declaration) }
            for declaration in topology.queues.values { _ = try declareQueueNow(declaration, passive: false) }
            for binding in topology.bindings { try bindNow(binding) }
            for channel in consumers.keys.sorted() { try startConsumerNow(channel: channel) }
        } catch {
            session.closeQuietly()
            self.session = nil
            throw error
        }
        lastError = nil
        logger.info("AMQP connected", metadata: [
            "amqp.heartbeat": "\(session.heartbeat)", "amqp.frame_max": "\(session.frameMax)",
        ])
    }

    private func connectionLost(_ error: AMQPError) {
        guard let session else { return }
        session.markClosed()
        self.session = nil
        openChannels.removeAll()
        assemblies.removeAll()
        lastError = error
        confirms.failAll(error)
        if closedByClient { return }
        if !recovery.isEnabled {
            for (_, consumer) in consumers { consumer.continuation.finish(throwing: error) }
            consumers.removeAll()
        }
        logger.warning("AMQP connection lost", metadata: ["error": "\(error)"])
    }

    /// Reconnects with backoff until it succeeds or the client closes the connection.
    private func recover() async {
        var attempt = 0
        while !closedByClient, session == nil {
            let delay = recovery.delay(attempt: attempt)
            attempt += 1
            try? await Task.sleep(for: delay)
            if closedByClient || Task.isCancelled { return }
            do {
                try establish()
                recoveryCount += 1
                logger.info("AMQP connection recovered", metadata: ["attempts": "\(attempt)"])
            } catch let error as AMQPError {
                lastError = error
                logger.warning("AMQP reconnect failed; retrying", metadata: [
                    "attempt": "\(attempt)", "error": "\(error)", "retry_in": "\(recovery.delay(attempt: attempt))",
                ])
            } catch {
                logger.warning("AMQP reconnect failed; retrying", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: The pump

    /// Reads frames whenever no caller's request is waiting, and keeps heartbeats going.
    private func pump() async {
        while !closedByClient, !Task.isCancelled {
            guard let session else {
                if recovery.isEnabled { await recover() } else { return }
                continue
            }
            var handled = 0
            reading: while handled < 1024 {
                switch session.readFrame() {
                case .frame(let frame):
                    handled += 1
                    handle(frame, session: session)
                    if self.session !== session { break reading }
                case .none:
                    break reading
                case .failed(let error):
                    connectionLost(error)
                    break reading
                }
            }
            if let current = self.session, current === session {
                session.releaseBuffers()
                if handled == 0 && !session.hasBufferedFrames {
                    // Sleep until the socket has data, a request arrives, or a heartbeat is due.
                    let interval = session.heartbeat > 0 ? min(1000, session.heartbeat * 250) : 1000
                    _ = executor.waitForReadable(session.socketFD, timeoutMilliseconds: Int32(interval))
                }
            }
            await Task.yield()
        }
    }

    private func handle(_ frame: amqp_frame_t, session: AMQPSession) {
        let channel = frame.channel
        switch frame.frame_type {
        case CSAGA_FRAME_METHOD:
            handleMethod(frame, channel: channel, session: session)
        case CSAGA_FRAME_HEADER:
            guard var assembly = assemblies[channel], let decoded = frame.payload.properties.decoded else { return }
            assembly.properties = CDecode.properties(decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
            assembly.bodySize = Int(frame.payload.properties.body_size)
            assembly.body.reserveCapacity(assembly.bodySize)
            assemblies[channel] = assembly
            if assembly.bodySize == 0 { complete(channel) }
        case CSAGA_FRAME_BODY:
            guard assemblies[channel] != nil else { return }
            assemblies[channel]!.body.append(CDecode.data(frame.payload.body_fragment))
            if assemblies[channel]!.body.count >= assemblies[channel]!.bodySize { complete(channel) }
        default:
            break
        }
    }

    private func handleMethod(_ frame: amqp_frame_t, channel: UInt16, session: AMQPSession) {
        let id = frame.payload.method.id
        let decoded = frame.payload.method.decoded
        switch id {
        case CSAGA_BASIC_DELIVER_METHOD:
            guard let d = decoded?.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee else { return }
            assemblies[channel] = ContentAssembly(kind: .delivery(
                consumerTag: CDecode.string(d.consumer_tag), deliveryTag: d.delivery_tag,
                redelivered: d.redelivered != 0, exchange: CDecode.string(d.exchange),
                routingKey: CDecode.string(d.routing_key)
            ))
        case CSAGA_BASIC_RETURN_METHOD:
            guard let r = decoded?.assumingMemoryBound(to: amqp_basic_return_t.self).pointee else { return }
            assemblies[channel] = ContentAssembly(kind: .returned(
                replyCode: r.reply_code, replyText: CDecode.string(r.reply_text),
                exchange: CDecode.string(r.exchange), routingKey: CDecode.string(r.routing_key)
            ))
        case CSAGA_BASIC_ACK_METHOD:
            guard channel == Self.publishChannel,
                  let ack = decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee else { return }
            confirms.acknowledged(ack.delivery_tag, multiple: ack.multiple != 0)
        case CSAGA_BASIC_NACK_METHOD:
            guard channel == Self.publishChannel,
                  let nack = decoded?.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee else { return }
            confirms.negativelyAcknowledged(nack.delivery_tag, multiple: nack.multiple != 0)
        case CSAGA_BASIC_CANCEL_METHOD:
            // The broker cancelled a consumer (its queue was deleted, or a quorum queue lost its leader).
            if let consumer = consumers.removeValue(forKey: channel) {
                logger.warning("AMQP consumer cancelled by the broker", metadata: [
                    "amqp.queue": "\(consumer.queue)", "amqp.consumer_tag": "\(consumer.tag)",
                ])
                consumer.continuation.finish(throwing: AMQPError(
                    .consumerCancelled, message: "the broker cancelled the consumer of queue '\(consumer.queue)'",
                    operation: "consume \(consumer.queue)"))
                session.closeChannel(channel)
                openChannels.removeValue(forKey: channel)
            }
        case CSAGA_CHANNEL_CLOSE_METHOD:
            let close = decoded?.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(.channelClosed, replyCode: close?.reply_code,
                                  message: close.map { CDecode.string($0.reply_text) } ?? "channel closed",
                                  operation: "channel \(channel)")
            session.sendChannelCloseOk(channel)
            channelClosedByBroker(channel, error: error)
        case CSAGA_CONNECTION_CLOSE_METHOD:
            let close = decoded?.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError(.connectionClosed, replyCode: close?.reply_code,
                                  message: close.map { CDecode.string($0.reply_text) } ?? "connection closed")
            session.sendConnectionCloseOk()
            connectionLost(error)
        case CSAGA_CONNECTION_BLOCKED_METHOD:
            logger.warning("AMQP connection blocked by the broker (resource alarm); publishes will wait")
        case CSAGA_CONNECTION_UNBLOCKED_METHOD:
            logger.info("AMQP connection unblocked")
        default:
            break
        }
    }

    private func complete(_ channel: UInt16) {
        guard let assembly = assemblies.removeValue(forKey: channel) else { return }
        let message = AMQPMessage(body: assembly.body, properties: assembly.properties)
        switch assembly.kind {
        case .delivery(let consumerTag, let deliveryTag, let redelivered, let exchange, let routingKey):
            guard let consumer = consumers[channel], let epoch = openChannels[channel] else { return }
            consumer.continuation.yield(AMQPDelivery(
                message: message, tag: DeliveryTag(channel: channel, channelEpoch: epoch, value: deliveryTag),
                consumerTag: consumerTag, queue: consumer.queue, exchange: exchange, routingKey: routingKey,
                redelivered: redelivered))
        case .returned(let code, let text, let exchange, let routingKey):
            confirms.returned(exchange: exchange, routingKey: routingKey, messageId: message.properties.messageId,
                              code: code, text: text)
        }
    }

    private func channelClosedByBroker(_ channel: UInt16, error: AMQPError) {
        openChannels.removeValue(forKey: channel)
        assemblies.removeValue(forKey: channel)
        logger.warning("AMQP channel closed by the broker", metadata: ["amqp.channel": "\(channel)", "error": "\(error)"])
        if channel == Self.publishChannel {
            confirms.failAll(error)
        } else if consumers[channel] != nil {
            // Its unacknowledged deliveries go back to the queue; consume again on a fresh channel.
            do {
                try startConsumerNow(channel: channel)
            } catch let failure as AMQPError {
                if let consumer = consumers.removeValue(forKey: channel) {
                    consumer.continuation.finish(throwing: failure)
                }
            } catch {}
        }
    }

    // MARK: Channels

    private func requireSession(_ operation: String) throws -> AMQPSession {
        guard let session, session.isOpen else {
            if closedByClient { throw AMQPError(.closed, message: "connection closed by the client", operation: operation) }
            throw AMQPError(.notConnected, message: lastError.map { "not connected (\($0.message))" } ?? "not connected",
                            operation: operation)
        }
        return session
    }

    private func ensureChannel(_ channel: UInt16) throws {
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
    /// channel; a connection error starts recovery.
    func onChannel<T>(_ channel: UInt16, _ operation: String, _ body: (AMQPSession) throws -> T) throws -> T {
        do {
            try ensureChannel(channel)
            let session = try requireSession(operation)
            return try body(session)
        } catch let error as AMQPError {
            switch error.code {
            case .channelClosed:
                openChannels.removeValue(forKey: channel)
                if channel == Self.publishChannel { confirms.failAll(error) }
            case .connectionLost, .connectionClosed:
                if !connecting { connectionLost(error) }
            default: break
            }
            throw error.during(operation)
        }
    }

    // MARK: Topology (recorded, and declared again after recovery)

    public func declareExchange(_ declaration: ExchangeDeclaration) throws {
        try declareExchangeNow(declaration)
        topology.exchanges[declaration.name] = declaration
    }

    /// exchange.declare with passive=true: throws `.channelClosed` 404 when the exchange does not exist.
    public func checkExchange(_ name: String) throws {
        try onChannel(Self.controlChannel, "exchange.declare passive \(name)") { s in
            let arena = CArena()
            _ = amqp_exchange_declare(s.state, Self.controlChannel, arena.bytes(name), arena.bytes("direct"),
                                      1, 0, 0, 0, amqp_empty_table)
            try s.check(channel: Self.controlChannel, operation: "exchange.declare passive \(name)")
        }
    }

    public func deleteExchange(_ name: String, ifUnused: Bool = false) throws {
        try onChannel(Self.controlChannel, "exchange.delete \(name)") { s in
            let arena = CArena()
            _ = amqp_exchange_delete(s.state, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0)
            try s.check(channel: Self.controlChannel, operation: "exchange.delete \(name)")
        }
        topology.exchanges.removeValue(forKey: name)
        topology.bindings.removeAll { $0.source == name || ($0.destinationKind == .exchange && $0.destination == name) }
    }

    @discardableResult
    public func declareQueue(_ declaration: QueueDeclaration) throws -> QueueState {
        let state = try declareQueueNow(declaration, passive: false)
        if !declaration.name.isEmpty { topology.queues[declaration.name] = declaration }
        return state
    }

    /// queue.declare with passive=true: the queue's counts, or `.channelClosed` 404 when it is missing.
    public func checkQueue(_ name: String) throws -> QueueState {
        try declareQueueNow(QueueDeclaration(name: name), passive: true)
    }

    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) throws -> Int {
        let count = try onChannel(Self.controlChannel, "queue.delete \(name)") { s -> Int in
            let arena = CArena()
            let ok = amqp_queue_delete(s.state, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
            try s.check(channel: Self.controlChannel, operation: "queue.delete \(name)")
            return Int(ok?.pointee.message_count ?? 0)
        }
        topology.queues.removeValue(forKey: name)
        topology.bindings.removeAll { $0.destinationKind == .queue && $0.destination == name }
        return count
    }

    @discardableResult
    public func purgeQueue(_ name: String) throws -> Int {
        try onChannel(Self.controlChannel, "queue.purge \(name)") { s -> Int in
            let arena = CArena()
            let ok = amqp_queue_purge(s.state, Self.controlChannel, arena.bytes(name))
            try s.check(channel: Self.controlChannel, operation: "queue.purge \(name)")
            return Int(ok?.pointee.message_count ?? 0)
        }
    }

    public func bind(_ binding: BindingDeclaration) throws {
        try bindNow(binding)
        if !topology.bindings.contains(binding) { topology.bindings.append(binding) }
    }

    public func unbind(_ binding: BindingDeclaration) throws {
        let operation = "unbind \(binding.destination) from \(binding.source) '\(binding.routingKey)'"
        try onChannel(Self.controlChannel, operation) { s in
            let arena = CArena()
            switch binding.destinationKind {
            case .queue:
                _ = amqp_queue_unbind(s.state, Self.controlChannel, arena.bytes(binding.destination),
                                      arena.bytes(binding.source), arena.bytes(binding.routingKey),
                                      arena.table(binding.arguments))
            case .exchange:
                _ = amqp_exchange_unbind(s.state, Self.controlChannel, arena.bytes(binding.destination),
                                         arena.bytes(binding.source), arena.bytes(binding.routingKey),
                                         arena.table(binding.arguments))
            }
            try s.check(channel: Self.controlChannel, operation: operation)
        }
        topology.bindings.removeAll { $0 == binding }
    }

    private func declareExchangeNow(_ d: ExchangeDeclaration) throws {
        try onChannel(Self.controlChannel, "exchange.declare \(d.name)") { s in
            let arena = CArena()
            _ = amqp_exchange_declare(s.state, Self.controlChannel, arena.bytes(d.name), arena.bytes(d.kind.rawValue),
                                      0, d.durable ? 1 : 0, d.autoDelete ? 1 : 0, d.internal ? 1 : 0,
                                      arena.table(d.arguments))
            try s.check(channel: Self.controlChannel, operation: "exchange.declare \(d.name)")
        }
    }

    private func declareQueueNow(_ d: QueueDeclaration, passive: Bool) throws -> QueueState {
        let operation = "queue.declare\(passive ? " passive" : "") \(d.name)"
        return try onChannel(Self.controlChannel, operation) { s -> QueueState in
            let arena = CArena()
            let ok = amqp_queue_declare(s.state, Self.controlChannel, arena.bytes(d.name), passive ? 1 : 0,
                                        d.durable ? 1 : 0, d.exclusive ? 1 : 0, d.autoDelete ? 1 : 0,
                                        arena.table(d.arguments))
            try s.check(channel: Self.controlChannel, operation: operation)
            guard let ok else { return QueueState(name: d.name, messageCount: 0, consumerCount: 0) }
            return QueueState(name: CDecode.string(ok.pointee.queue), messageCount: Int(ok.pointee.message_count),
                              consumerCount: Int(ok.pointee.consumer_count))
        }
    }

    private func bindNow(_ b: BindingDeclaration) throws {
        let operation = "bind \(b.destination) to \(b.source) '\(b.routingKey)'"
        try onChannel(Self.controlChannel, operation) { s in
            let arena = CArena()
            switch b.destinationKind {
            case .queue:
                _ = amqp_queue_bind(s.state, Self.controlChannel, arena.bytes(b.destination), arena.bytes(b.source),
                                    arena.bytes(b.routingKey), arena.table(b.arguments))
            case .exchange:
                _ = amqp_exchange_bind(s.state, Self.controlChannel, arena.bytes(b.destination), arena.bytes(b.source),
                                       arena.bytes(b.routingKey), arena.table(b.arguments))
            }
            try s.check(channel: Self.controlChannel, operation: operation)
        }
    }

    // MARK: Publishing with confirms

    /// Publishes one message and waits for the broker's confirm. Throws `.unroutable` (mandatory and no
    /// queue bound), `.nacked`, or the channel/connection error that prevented the confirm.
    public func publish(_ request: PublishRequest) async throws {
        let outcome = await publish([request])[0]
        try Self.check(outcome, request)
    }

    /// Publishes a batch and waits for all its confirms at once; one outcome per request, in order.
    public func publish(_ requests: [PublishRequest]) async -> [PublishOutcome] {
        guard !requests.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            let batch = confirms.beginBatch(count: requests.count, continuation: continuation)
            var failure: AMQPError?
            do {
                try onChannel(Self.publishChannel, "publish") { _ in }
            } catch let error as AMQPError {
                failure = error
            } catch {
                failure = AMQPError(.library, message: "\(error)")
            }
            for (index, request) in requests.enumerated() {
                if let failure {
                    confirms.settleUnsent(batch: batch, index: index, .failed(failure))
                    continue
                }
                guard let session = self.session else {
                    failure = AMQPError(.notConnected, message: "not connected", operation: "publish")
                    confirms.settleUnsent(batch: batch, index: index, .failed(failure!))
                    continue
                }
                let rc = Self.send(request, on: session)
                if rc == AMQP_STATUS_OK.rawValue {
                    confirms.sent(batch: batch, index: index, exchange: request.exchange,
                                  routingKey: request.routingKey, messageId: request.message.properties.messageId)
                } else {
                    let error = AMQPError(.connectionLost, message: AMQPSession.statusText(rc),
                                          operation: "publish to '\(request.exchange)' key '\(request.routingKey)'",
                                          libraryStatus: rc)
                    failure = error
                    confirms.settleUnsent(batch: batch, index: index, .failed(error))
                    connectionLost(error)
                }
            }
        }
    }

    private static func send(_ request: PublishRequest, on session: AMQPSession) -> Int32 {
        let arena = CArena()
        var properties = arena.properties(request.message.properties)
        return request.message.body.withUnsafeBytes { body in
            amqp_basic_publish(session.state, publishChannel, arena.bytes(request.exchange),
                               arena.bytes(request.routingKey), request.mandatory ? 1 : 0, 0, &properties,
                               amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
    }

    static func check(_ outcome: PublishOutcome, _ request: PublishRequest) throws {
        let target = "publish to exchange '\(request.exchange)' key '\(request.routingKey)'"
        switch outcome {
        case .confirmed: return
        case .returned(let code, let text):
            throw AMQPError(.unroutable, replyCode: code, message: text, operation: target)
        case .nacked:
            throw AMQPError(.nacked, message: "the broker nacked the message", operation: target)
        case .failed(let error):
            throw error.during(target)
        }
    }

    // MARK: Consuming

    /// Starts a consumer with manual acknowledgements on its own channel. `prefetch` bounds the
    /// unacknowledged deliveries in flight (0: unbounded).
    public func consume(queue: String, prefetch: UInt16 = 100, consumerTag: String? = nil, exclusive: Bool = false,
                        arguments: FieldTable = [:]) throws -> AMQPConsumer {
        let channel = nextConsumerChannel
        nextConsumerChannel += 1
        let tag = consumerTag ?? "\(configuration.connectionName ?? "consumer")-\(queue)-\(channel)-\(UInt32.random(in: 0...UInt32.max))"
        let (stream, continuation) = AsyncThrowingStream<AMQPDelivery, any Error>.makeStream()
        consumers[channel] = ConsumerRecord(queue: queue, tag: tag, prefetch: prefetch, exclusive: exclusive,
                                            arguments: arguments, continuation: continuation)
        do {
            try startConsumerNow(channel: channel)
        } catch {
            consumers.removeValue(forKey: channel)
            continuation.finish(throwing: error)
            throw error
        }
        return AMQPConsumer(queue: queue, consumerTag: tag, deliveries: stream, connection: self, channel: channel)
    }

    private func startConsumerNow(channel: UInt16) throws {
        guard let consumer = consumers[channel] else { return }
        try onChannel(channel, "basic.consume \(consumer.queue)") { s in
            try s.qos(channel, prefetch: consumer.prefetch)
            let arena = CArena()
            _ = amqp_basic_consume(s.state, channel, arena.bytes(consumer.queue), arena.bytes(consumer.tag), 0, 0,
                                   consumer.exclusive ? 1 : 0, arena.table(consumer.arguments))
            try s.check(channel: channel, operation: "basic.consume \(consumer.queue)")
        }
    }

    func cancelConsumer(channel: UInt16) throws {
        guard let consumer = consumers.removeValue(forKey: channel) else { return }
        defer { consumer.continuation.finish() }
        guard openChannels[channel] != nil, let session else { return }
        let arena = CArena()
        _ = amqp_basic_cancel(session.state, channel, arena.bytes(consumer.tag))
        try session.check(channel: channel, operation: "basic.cancel \(consumer.tag)")
    }

    /// Acknowledges a delivery (and, with `multiple`, all earlier ones on its channel).
    public func ack(_ tag: DeliveryTag, multiple: Bool = false) throws {
        try acknowledge(tag, "basic.ack") { s in amqp_basic_ack(s.state, tag.channel, tag.value, multiple ? 1 : 0) }
    }

    /// Negatively acknowledges: back to the queue with `requeue`, else dead-lettered or dropped.
    public func nack(_ tag: DeliveryTag, multiple: Bool = false, requeue: Bool) throws {
        try acknowledge(tag, "basic.nack") { s in
            amqp_basic_nack(s.state, tag.channel, tag.value, multiple ? 1 : 0, requeue ? 1 : 0)
        }
    }

    /// Rejects one delivery: back to the queue with `requeue`, else dead-lettered or dropped.
    public func reject(_ tag: DeliveryTag, requeue: Bool) throws {
        try acknowledge(tag, "basic.reject") { s in amqp_basic_reject(s.state, tag.channel, tag.value, requeue ? 1 : 0) }
    }

    private func acknowledge(_ tag: DeliveryTag, _ operation: String, _ send: (AMQPSession) -> Int32) throws {
        guard let session, session.isOpen, openChannels[tag.channel] == tag.channelEpoch else {
            throw AMQPError(.staleDelivery, message: "delivery \(tag.value) came on an earlier connection or channel; the broker redelivers it",
                            operation: operation)
        }
        let rc = send(session)
        if rc != AMQP_STATUS_OK.rawValue {
            let error = AMQPError(.connectionLost, message: AMQPSession.statusText(rc), operation: operation, libraryStatus: rc)
            connectionLost(error)
            throw error
        }
    }

    // MARK: Testing hooks

    /// Drops the socket without a close handshake, as a network failure would (for tests of recovery).
    public func simulateNetworkFailure() {
        guard let session else { return }
        shutdown(session.socketFD, Int32(SHUT_RDWR))
    }
}

/// A consumer as registered, so it can be re-registered after recovery.
struct ConsumerRecord {
    var queue: String
    var tag: String
    var prefetch: UInt16
    var exclusive: Bool
    var arguments: FieldTable
    var continuation: AsyncThrowingStream<AMQPDelivery, any Error>.Continuation
}

/// What this connection declared, in order to declare it again after recovery.
struct RecordedTopology {
    var exchanges: [String: ExchangeDeclaration] = [:]
    var queues: [String: QueueDeclaration] = [:]
    var bindings: [BindingDeclaration] = []
}

/// A delivery or return being assembled from its method, header and body frames.
struct ContentAssembly {
    enum Kind {
        case delivery(consumerTag: String, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
        case returned(replyCode: UInt16, replyText: String, exchange: String, routingKey: String)
    }

    var kind: Kind
    var properties = BasicProperties()
    var bodySize = 0
    var body = Data()
}
