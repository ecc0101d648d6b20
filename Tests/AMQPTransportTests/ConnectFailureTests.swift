// Connecting fails clearly: nothing listening, a refused login. The first connect throws (only later
// losses are recovered), and messages name the target and user but never the password.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Connect failures")
struct ConnectFailureTests {
    @Test("nothing listening on the port: .connectFailed naming the target")
    func refused() async throws {
        let port = try DedicatedBrokerNode.freePort()
        let error = await amqpError {
            _ = try await AMQPConnection.connect(url: "amqp://guest:guest@127.0.0.1:\(port)/", logger: quietLogger)
        }
        #expect(error?.code == .connectFailed)
        #expect(error?.message.contains("127.0.0.1:\(port)") == true)
        #expect(error?.isTransient == true)
    }

    @Test("a refused login reports .authenticationFailed with the user, never the password")
    func refusedLogin() async throws {
        let components = try #require(URLComponents(string: TestBroker.url))
        let url = "amqp://guest:wr0ng-pa55word@\(components.host ?? "127.0.0.1"):\(components.port ?? 5672)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code == .authenticationFailed)
        #expect(!"\(String(describing: error))".contains("wr0ng"))
        #expect("\(String(describing: error))".contains("guest"))
    }

    @Test("a vhost that does not exist is refused like a bad login, naming the vhost")
    func missingVhost() async throws {
        let vhost = TestBroker.uniqueName("no-such-vhost")
        let error = await amqpError {
            _ = try await AMQPConnection.connect(url: TestBroker.url(TestBroker.url, vhost: vhost), logger: quietLogger)
        }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.message.contains(vhost) == true, "\(String(describing: error))")
    }

    // Failed before: a socket closed before the broker's connection.start (a TCP proxy without a healthy
    // backend, a node not ready yet) was reported as a refused login, so `connectRetrying`, which must
    // wait for a broker that is not up yet, gave up at once as if the credentials were wrong.
    @Test("a peer that closes before the broker's greeting is a transient failure that connectRetrying retries")
    func closedBeforeGreeting() async throws {
        let listener = try ClosingListener()
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code != .authenticationFailed, "\(String(describing: error))")
        #expect(error?.isTransient == true, "\(String(describing: error))")

        let gaveUp = try await connectRetryingGivesUp(url: url, listener: listener)
        #expect(gaveUp == nil, "connectRetrying gave up: \(String(describing: gaveUp))")
    }

    // Failed before: a node that closes connections in their handshake (320 CONNECTION_FORCED while it shuts
    // down, as in a rolling restart) made `connectRetrying` give up at once: it retried only failures to
    // connect and lost sockets, though `.connectionClosed` is transient.
    @Test("a broker that closes the handshake with 320 is retried by connectRetrying")
    func forcedCloseInHandshakeIsRetried() async throws {
        let listener = try ClosingListener(closeAfterGreeting: true)
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code == .connectionClosed, "\(String(describing: error))")
        #expect(error?.replyCode == 320)

        let gaveUp = try await connectRetryingGivesUp(url: url, listener: listener)
        #expect(gaveUp == nil, "connectRetrying gave up: \(String(describing: gaveUp))")
    }

    /// Runs `connectRetrying` against `listener` until it connected three more times after the first
    /// attempt (then cancels it: nil) or gave up (its error).
    private func connectRetryingGivesUp(url: String, listener: ClosingListener) async throws -> (any Error)? {
        let outcome = Box<(any Error)?>(nil)
        let configuration = try AMQPConfiguration(url: url)
        let attemptsBefore = listener.accepted
        let retrying = Task {
            do {
                let connection = try await AMQPConnection.connectRetrying(
                    configuration, recovery: RecoveryPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50)),
                    logger: quietLogger)
                await connection.close()
            } catch {
                outcome.withLock { $0 = error }
            }
        }
        try await waitUntil(timeout: .seconds(10), message: "three retries after the first attempt") {
            listener.accepted >= attemptsBefore + 4 || outcome.withLock { $0 } != nil
        }
        let gaveUp = outcome.withLock { $0 }
        retrying.cancel()
        _ = await retrying.value
        return gaveUp
    }

    @Test("operations on a closed connection fail with .closed")
    func closedConnection() async throws {
        let connection = try await AMQPConnection.connect(url: TestBroker.url, connectionName: "closed-test")
        await connection.close()
        #expect(await !connection.isConnected)
        let error = await amqpError { _ = try await connection.checkQueue("anything") }
        #expect(error?.code == .closed)
        let outcomes = await connection.publish([.toQueue("anything", message("x"))])
        guard case .failed(let failure) = outcomes.first else {
            Issue.record("expected .failed, got \(outcomes)")
            return
        }
        #expect(failure.code == .closed)
        let waitError = await amqpError { try await connection.waitUntilConnected(timeout: .seconds(1)) }
        #expect(waitError?.code == .closed)
    }
}

/// A TCP listener on a free local port that reads the client's protocol header and closes the connection,
/// as a proxy without a backend does. `@unchecked Sendable`: `fd` and `port` never change after `init`;
/// the count is in a `Box` (lock-protected).
final class ClosingListener: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let count = Box(0)

    /// Connections accepted so far.
    var accepted: Int { count.withLock { $0 } }

    /// With `closeAfterGreeting`, the listener answers as a node that is shutting down does: it sends
    /// connection.start, reads the client's start-ok, and closes the connection with 320 CONNECTION_FORCED.
    init(closeAfterGreeting: Bool = false) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AMQPError(.library, message: "socket() failed") }
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw AMQPError(.library, message: "bind/listen failed") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let count = self.count
        let thread = Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                count.withLock { $0 += 1 }
                // Read the 8-byte protocol header, so the close is a clean FIN rather than a reset.
                var header = [UInt8](repeating: 0, count: 8)
                var received = 0
                while received < 8 {
                    let n = header.withUnsafeMutableBytes { read(client, $0.baseAddress! + received, 8 - received) }
                    if n <= 0 { break }
                    received += n
                }
                if closeAfterGreeting {
                    Self.write(Self.methodFrame(class: 10, method: 10, arguments: [0, 9] + Self.long(0)
                        + Self.long(5) + Array("PLAIN".utf8) + Self.long(5) + Array("en_US".utf8)), to: client)
                    Self.skipFrame(client)
                    let text = Array("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'".utf8)
                    Self.write(Self.methodFrame(class: 10, method: 50, arguments: Self.short(320)
                        + [UInt8(text.count)] + text + Self.short(0) + Self.short(0)), to: client)
                    Self.skipFrame(client)
                }
                close(client)
            }
        }
        thread.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private static func short(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    private static func long(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8((value >> $0) & 0xFF) } }

    private static func methodFrame(class classId: UInt16, method: UInt16, arguments: [UInt8]) -> [UInt8] {
        let payload = short(classId) + short(method) + arguments
        return [1] + short(0) + long(UInt32(payload.count)) + payload + [0xCE]
    }

    private static func write(_ bytes: [UInt8], to client: Int32) {
        _ = bytes.withUnsafeBytes { Glibc.write(client, $0.baseAddress!, $0.count) }
    }

    /// Reads one frame (or gives up when the client closes).
    private static func skipFrame(_ client: Int32) {
        var header = [UInt8](repeating: 0, count: 7)
        guard readFully(client, &header) else { return }
        let size = header[3...6].reduce(0) { $0 << 8 | Int($1) }
        var rest = [UInt8](repeating: 0, count: size + 1)
        _ = readFully(client, &rest)
    }

    private static func readFully(_ client: Int32, _ buffer: inout [UInt8]) -> Bool {
        var received = 0
        let count = buffer.count
        while received < count {
            let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress! + received, count - received) }
            if n <= 0 { return false }
            received += n
        }
        return true
    }
}
