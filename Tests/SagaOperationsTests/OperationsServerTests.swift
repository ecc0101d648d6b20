import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LogTestSupport
import Logging
import Prometheus
import SagaOperations
import ServiceLifecycle
import Synchronization
import Testing

@Suite("Operations HTTP server")
struct OperationsServerTests {
    /// Starts a server on a free port, runs `body`, and shuts the server down.
    private func withServer(
        registry: PrometheusCollectorRegistry, ready: Flag,
        _ body: (Int) async throws -> Void
    ) async throws {
        let port = try freePort()
        let server = OperationsServer(port: port, registry: registry, logger: Logger(label: "test")) {
            let isReady = ready.value
            return .init(isReady: isReady, reason: isReady ? "" : "broker disconnected")
        }
        let task = Task { try await server.run() }
        defer { task.cancel() }
        try await waitForListening(port)
        try await body(port)
    }

    @Test("/metrics shows counters in the Prometheus text format with their exact values")
    func metricsAreScraped() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let counter = factory.makeCounter(label: "saga_messages_processed_total", dimensions: [("endpoint", "t")])
        counter.increment(by: 42)
        try await withServer(registry: registry, ready: Flag(true)) { port in
            let (status, body) = try await get(port, "/metrics")
            #expect(status == 200)
            #expect(body.contains(#"saga_messages_processed_total{endpoint="t"} 42"#))
        }
    }

    @Test("/health/ready flips between 200 and 503 with the readiness; /health/live stays 200")
    func readinessFlips() async throws {
        let ready = Flag(true)
        try await withServer(registry: PrometheusCollectorRegistry(), ready: ready) { port in
            #expect(try await get(port, "/health/ready").status == 200)
            ready.value = false
            let notReady = try await get(port, "/health/ready")
            #expect(notReady.status == 503)
            #expect(notReady.body.contains("broker disconnected"))
            #expect(try await get(port, "/health/live").status == 200)
            ready.value = true
            #expect(try await get(port, "/health/ready").status == 200)
            #expect(try await get(port, "/nope").status == 404)
        }
    }

    // Failed before: the reason went into the body as it was, and it quotes the broker's text (a vhost's or a
    // queue's name): a line break in it started a line of its own, an escape sequence acted on the terminal of
    // the operator running `curl`.
    @Test("/health/ready writes its reason as one line of visible text, control characters escaped as the text log does")
    func readinessReasonIsOneVisibleLine() async throws {
        let port = try freePort()
        let server = OperationsServer(port: port, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test")) {
            .init(isReady: false, reason: "vhost 'a\u{1B}[2J\r\nb\u{85}c\u{2028}d\u{7}' not found")
        }
        let task = Task { try await server.run() }
        defer { task.cancel() }
        try await waitForListening(port)
        let (status, body) = try await get(port, "/health/ready")
        #expect(status == 503)
        #expect(body == #"not ready: vhost 'a\u{1B}[2J\r\nb\u{85}c\u{2028}d\u{7}' not found"# + "\n", "\(body.debugDescription)")
    }

    // Found by an operations review: `run --http-port` on a port in use stopped with NIO's description,
    // "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)": an API's name and a stray
    // parenthesis in the one line an operator reads.
    @Test("a port in use is named with the system's reason alone")
    func portInUseReason() async throws {
        try await withServer(registry: PrometheusCollectorRegistry(), ready: Flag(true)) { port in
            let second = OperationsServer(port: port, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test")) {
                .init(isReady: true)
            }
            do {
                try await second.bind()
                Issue.record("bound a port in use")
            } catch let error as OperationsServerError {
                #expect(error.reason == "Address already in use (errno 98)", "\(error)")
                #expect(error.description == "the operations HTTP server cannot listen on 127.0.0.1:\(port): "
                    + "Address already in use (errno 98) (check --http-port and --http-host)", "\(error)")
            }
        }
    }

    // Failed before: a client that connected and sent nothing kept its connection (and a file descriptor of
    // the endpoint's) for ever.
    @Test("a client connection that sends nothing is closed after the idle timeout")
    func idleClientsAreClosed() async throws {
        let port = try freePort()
        let server = OperationsServer(port: port, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test"),
                                      idleTimeout: .milliseconds(300)) { .init(isReady: true) }
        let task = Task { try await server.run() }
        defer { task.cancel() }
        try await waitForListening(port)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        // Closed by the server: readable, and the read finds the end of the stream.
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 5000)
        #expect(ready == 1, "the idle connection was still open after 5 s")
        var byte: UInt8 = 0
        if ready == 1 { #expect(recv(fd, &byte, 1, 0) == 0) }
    }

    // Failed before: every connection was accepted and kept (an idle one for a minute), so a misbehaving
    // scraper or a port scan could take every file descriptor of the process, which its AMQP sockets and
    // SQLite need too.
    @Test("a connection beyond the limit is closed at once; the open ones keep working; a closed one frees its place")
    func connectionsAreBounded() async throws {
        let port = try freePort()
        let registry = PrometheusCollectorRegistry()
        let log = CapturedLog()
        let limit = 3
        let server = OperationsServer(port: port, registry: registry, logger: log.logger(label: "test", level: .info),
                                      maxConnections: limit) { .init(isReady: true) }
        let task = Task { try await server.run() }
        defer { task.cancel() }
        var open: [RawHTTPConnection] = []
        for _ in 0..<limit { open.append(try await answeredConnection(port)) }

        for _ in 0..<3 {
            let beyond = try #require(RawHTTPConnection(port: port))
            #expect(beyond.isClosedByServer(within: .seconds(5)), "a connection beyond the limit was still open after 5 s")
        }
        for connection in open {
            #expect(connection.get("/health/live")?.status == 200, "an open connection stopped working")
        }
        // Each refusal counted; logged once, not once per connection.
        let metrics = open[0].get("/metrics")?.body ?? ""
        #expect(metrics.split(separator: "\n").contains("saga_http_connections_refused_total 3"), "\(metrics)")
        let warnings = log.entries.filter { $0.level == .warning }
        #expect(warnings.count == 1, "\(log.lines)")

        open.removeFirst().close()
        let again = try await answeredConnection(port)
        #expect(again.get("/health/ready")?.status == 200)
    }

    // Failed before: `run` waited for its channel to close and ignored cancellation, so a service group
    // whose endpoint failed (and cancelled every service) never returned, and /health/live stayed 200.
    @Test("cancelling run closes the server and returns")
    func cancellationEndsRun() async throws {
        let port = try freePort()
        let server = OperationsServer(port: port, registry: PrometheusCollectorRegistry(), logger: Logger(label: "test")) {
            .init(isReady: true)
        }
        let task = Task { try await server.run() }
        try await waitForListening(port)
        let returned = Flag(false)
        Task {
            _ = try? await task.value
            returned.value = true
        }
        task.cancel()
        for _ in 0..<200 where !returned.value { try await Task.sleep(for: .milliseconds(50)) }
        #expect(returned.value, "run did not return within 10 s of its cancellation")
    }
}

private func get(_ port: Int, _ path: String) async throws -> (status: Int, body: String) {
    let url = URL(string: "http://127.0.0.1:\(port)\(path)")!
    let (data, response) = try await URLSession.shared.data(from: url)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

/// A connection the server answers on: retried, since the server learns of a connection that closed
/// (and so frees its place) a moment after the client closed it, and before it listens at all.
private func answeredConnection(_ port: Int) async throws -> RawHTTPConnection {
    for _ in 0..<100 {
        if let connection = RawHTTPConnection(port: port), connection.get("/health/live", timeout: .seconds(2))?.status == 200 {
            return connection
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw CancellationError()
}

private func waitForListening(_ port: Int) async throws {
    for _ in 0..<100 {
        if (try? await get(port, "/health/live")) != nil { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw CancellationError()
}

private func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A readiness switch the test flips while the server reads it.
private final class Flag: Sendable {
    private let state: Mutex<Bool>
    init(_ value: Bool) { state = Mutex(value) }
    var value: Bool {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
