import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import Prometheus
public import ServiceLifecycle
import Synchronization

/// The operator's HTTP endpoint: Prometheus metrics and health checks for an orchestrator.
///
/// - `GET /metrics`: every swift-metrics metric recorded through the Prometheus factory, in the text
///   exposition format.
/// - `GET /health/live`: 200 while the process serves requests.
/// - `GET /health/ready`: 200 when `readiness` says the endpoint can work (broker connected, database
///   open), otherwise 503 with the reason, as one line of visible text (`PrintableText`): it quotes the
///   broker's error text, and a vhost's or queue's name in it may hold a line break or an escape sequence
///   that acted on the terminal of an operator running `curl`.
public final class OperationsServer: Service, Sendable {
    public struct Readiness: Sendable {
        public var isReady: Bool
        public var reason: String
        public init(isReady: Bool, reason: String = "") {
            self.isReady = isReady
            self.reason = reason
        }
    }

    public let host: String
    public let port: Int
    /// A client connection that sends nothing for this long is closed: idle or stalled clients would
    /// otherwise each hold a file descriptor (which SQLite and AMQP need too) for as long as they like.
    public let idleTimeout: Duration
    /// At most this many client connections are open at once (see `ConnectionLimiter`); one more is
    /// closed as soon as it is accepted, and counted in `saga_http_connections_refused_total`.
    public let maxConnections: Int
    private let registry: PrometheusCollectorRegistry
    private let readiness: @Sendable () async -> Readiness
    private let logger: Logger
    /// Set by `bind`, taken by `run`.
    private let bound = Mutex<(any Channel)?>(nil)

    public init(host: String = "127.0.0.1", port: Int, registry: PrometheusCollectorRegistry,
                logger: Logger, idleTimeout: Duration = .seconds(60), maxConnections: Int = 64,
                readiness: @escaping @Sendable () async -> Readiness) {
        self.host = host
        self.port = port
        precondition(maxConnections >= 1, "maxConnections must be at least 1")
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.registry = registry
        self.readiness = readiness
        self.logger = logger
    }

    /// Starts listening, so that a port in use or a bad address stops a program at its start, before it
    /// does any work, with an error naming the address (`OperationsServerError`). `run` binds by itself
    /// when this was not called.
    /// Once: a second call does nothing.
    public func bind() async throws {
        guard bound.withLock({ $0 == nil }) else { return }
        let channel = try await listen()
        bound.withLock { $0 = channel }
    }

    deinit {
        // Bound but never run: stop listening.
        bound.withLock { $0?.close(promise: nil) }
    }

    private func listen() async throws -> any Channel {
        let registry = self.registry
        let readiness = self.readiness
        let (limit, logger) = (maxConnections, logger)
        // Made now, not at the first refusal, so that /metrics shows it (at 0) from the start.
        let refused = registry.makeCounter(descriptor: MetricNameDescriptor(
            namespace: "saga", subsystem: "http", metricName: "connections_refused", unitName: "total",
            helpText: "Connections to the operations HTTP server closed at once: its limit of open connections was reached"))
        let idle = TimeAmount.nanoseconds(idleTimeout.components.seconds * 1_000_000_000
                                          + idleTimeout.components.attoseconds / 1_000_000_000)
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ConnectionLimiter(limit: limit, logger: logger, refusedCounter: refused))
                    }
                }
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                        try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(
                            OperationsHandler(registry: registry, readiness: readiness))
                    }
                }
                .bind(host: host, port: port).get()
        } catch let error as IOError {
            // NIO's own description names its API and has a stray parenthesis ("bind(descriptor:ptr:bytes:):
            // Address already in use) (errno: 98)"): the operator needs the system's reason.
            throw OperationsServerError(host: host, port: port,
                                        reason: "\(String(cString: strerror(error.errnoCode))) (errno \(error.errnoCode))")
        } catch {
            throw OperationsServerError(host: host, port: port, reason: "\(error)")
        }
        logger.info("operations HTTP server listening", metadata: [
            "address": "http://\(host):\(channel.localAddress?.port ?? port)",
            "paths": "/metrics /health/live /health/ready"])
        return channel
    }

    public func run() async throws {
        let channel: any Channel
        if let earlier = bound.withLock({ $0.take() }) {
            channel = earlier
        } else {
            channel = try await listen()
        }
        // Cancellation too: the service group cancels every service when one fails (the endpoint could not
        // open its database), and a server still listening would keep the process, and its 200 on
        // /health/live, alive for ever.
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Answers one HTTP request per call; the routes are few and fixed.
private final class OperationsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let readiness: @Sendable () async -> OperationsServer.Readiness
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, readiness: @escaping @Sendable () async -> OperationsServer.Readiness) {
        self.registry = registry
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let keepAlive = head.isKeepAlive
            guard head.method == .GET || head.method == .HEAD else {
                respond(context, status: .methodNotAllowed, body: "only GET\n", keepAlive: keepAlive)
                return
            }
            switch path {
            case "/metrics":
                var buffer: [UInt8] = []
                registry.emit(into: &buffer)
                respond(context, status: .ok, body: String(decoding: buffer, as: UTF8.self),
                        contentType: "text/plain; version=0.0.4; charset=utf-8", keepAlive: keepAlive)
            case "/health/live":
                respond(context, status: .ok, body: "live\n", keepAlive: keepAlive)
            case "/health/ready":
                let readiness = self.readiness
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let promise = context.eventLoop.makePromise(of: OperationsServer.Readiness.self)
                promise.completeWithTask { await readiness() }
                promise.futureResult.whenSuccess { state in
                    let (handler, context) = loopBound.value
                    handler.respond(context, status: state.isReady ? .ok : .serviceUnavailable,
                                    body: state.isReady ? "ready\n" : "not ready: \(PrintableText.oneLine(state.reason))\n",
                                    keepAlive: keepAlive)
                }
            default:
                respond(context, status: .notFound, body: "not found; try /metrics, /health/live, /health/ready\n",
                        keepAlive: keepAlive)
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, status: HTTPResponseStatus, body: String,
                         contentType: String = "text/plain; charset=utf-8", keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}

/// Closes a connection that `IdleStateHandler` saw read nothing for its timeout.
private final class CloseWhenIdle: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// The operations server could not listen on its address (a port in use, an address not on this host).
public struct OperationsServerError: Error, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var reason: String

    public var description: String {
        "the operations HTTP server cannot listen on \(host):\(port): \(reason) (check --http-port and --http-host)"
    }
}
