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

        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect(gaveUp == nil, "connectRetrying gave up: \(String(describing: gaveUp))")
    }

    // Failed before: a node that closes connections in their handshake (320 CONNECTION_FORCED while it shuts
    // down, as in a rolling restart) made `connectRetrying` give up at once: it retried only failures to
    // connect and lost sockets, though `.connectionClosed` is transient.
    @Test("a broker that closes the handshake with 320 is retried by connectRetrying")
    func forcedCloseInHandshakeIsRetried() async throws {
        let listener = try ClosingListener(closeAfterGreeting: .forced)
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code == .connectionClosed, "\(String(describing: error))")
        #expect(error?.replyCode == 320)

        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect(gaveUp == nil, "connectRetrying gave up: \(String(describing: gaveUp))")
    }

    // Failed before: every connection.close in the handshake but 403 and 530 was a transient
    // `.connectionClosed`, so `connectRetrying` retried a protocol error that no retry can fix for ever,
    // with a warning at every attempt.
    @Test("a handshake closed with a permanent reply code makes connectRetrying throw at once",
          arguments: ConnectFailureTests.permanentCloses)
    func permanentHandshakeClose(_ close: HandshakeClose) async throws {
        let listener = try ClosingListener(closeAfterGreeting: close)
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code == .handshakeFailed, "\(String(describing: error))")
        #expect(error?.replyCode == close.code, "\(String(describing: error))")
        #expect(error?.isTransient == false, "\(String(describing: error))")
        #expect(error?.message.contains(close.text) == true, "\(String(describing: error))")

        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect((gaveUp as? AMQPError)?.replyCode == close.code, "\(String(describing: gaveUp))")
        #expect(listener.accepted == 2, "connectRetrying tried \(listener.accepted - 1) times")
    }

    /// Reply codes a broker may close the handshake with that do not change on a retry, with texts like
    /// RabbitMQ's.
    static let permanentCloses = [
        HandshakeClose(code: 402, text: "INVALID_PATH - the virtual host name is not valid"),
        HandshakeClose(code: 501, text: "FRAME_ERROR - type 1, first 16 octets = <<>>: frame_too_large"),
        HandshakeClose(code: 502, text: "SYNTAX_ERROR - cannot decode connection.start_ok"),
        HandshakeClose(code: 503, text: "COMMAND_INVALID - unknown method in connection state starting"),
        HandshakeClose(code: 504, text: "CHANNEL_ERROR - expected 'connection.tune_ok'"),
        HandshakeClose(code: 505, text: "UNEXPECTED_FRAME - expected method frame, got non method frame"),
        HandshakeClose(code: 540, text: "NOT_IMPLEMENTED - the SASL mechanism is not supported"),
    ]

    // Failed before: RabbitMQ 3.10 refuses a connection to a vhost whose processes are down (they crashed,
    // e.g. on a full disk, and stay down until `rabbitmqctl restart_vhost`) with this 541, which was taken
    // for a permanent protocol error: an endpoint started meanwhile stopped at once (a crash loop under a
    // service manager), while one already running retried it until the vhost was back. Nothing in the
    // client's settings is wrong: as an unreachable broker, it is waited out.
    @Test("a handshake closed with 541 because the vhost is down is retried by connectRetrying")
    func vhostDownIsRetried() async throws {
        let down = HandshakeClose(
            code: 541, text: "INTERNAL_ERROR - access to vhost 'v' refused for user 'guest': vhost 'v' is down")
        let listener = try ClosingListener(closeAfterGreeting: down)
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/v"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.replyCode == 541, "\(String(describing: error))")
        #expect(error?.isTransient == true, "\(String(describing: error))")
        #expect(error?.message.contains("vhost 'v' is down") == true, "\(String(describing: error))")

        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect(gaveUp == nil, "connectRetrying gave up: \(String(describing: gaveUp))")
    }

    // Failed before: every 530 was a refused login, so a user at its connection limit (`rabbitmqctl
    // set_user_limits`) made `connectRetrying` give up, though the limit frees up when its other
    // connections close. The texts are RabbitMQ 3.10's.
    @Test("530 for a user at its connection limit is retried by connectRetrying; 530 for a missing vhost is not")
    func userConnectionLimitIsRetried() async throws {
        let limit = HandshakeClose(
            code: 530, text: "NOT_ALLOWED - connection refused for user 'guest': user connection limit (2) is reached")
        let full = try ClosingListener(closeAfterGreeting: limit)
        defer { full.stop() }
        let fullURL = "amqp://guest:guest@127.0.0.1:\(full.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: fullURL, logger: quietLogger) }
        #expect(error?.code == .connectionLimit, "\(String(describing: error))")
        #expect(error?.replyCode == 530)
        #expect(error?.isTransient == true, "\(String(describing: error))")
        #expect(error?.message.contains(limit.text) == true, "\(String(describing: error))")
        let gaveUp = try await full.connectRetryingGivesUp(url: fullURL)
        #expect(gaveUp == nil, "connectRetrying gave up: \(String(describing: gaveUp))")

        let missing = try ClosingListener(closeAfterGreeting: HandshakeClose(code: 530, text: "NOT_ALLOWED - vhost nowhere not found"))
        defer { missing.stop() }
        let missingURL = "amqp://guest:guest@127.0.0.1:\(missing.port)/nowhere"
        let refused = try await missing.connectRetryingGivesUp(url: missingURL)
        #expect((refused as? AMQPError)?.code == .authenticationFailed, "\(String(describing: refused))")
        #expect(missing.accepted == 1)
    }

    @Test("a refused login and a vhost that does not exist make connectRetrying throw at once")
    func refusedLoginIsNotRetried() async throws {
        let components = try #require(URLComponents(string: TestBroker.url))
        let badPassword = "amqp://guest:wr0ng-pa55word@\(components.host ?? "127.0.0.1"):\(components.port ?? 5672)/"
        let missingVhost = TestBroker.url(TestBroker.url, vhost: TestBroker.uniqueName("no-such-vhost"))
        for url in [badPassword, missingVhost] {
            let configuration = try AMQPConfiguration(url: url)
            let error = await amqpError {
                _ = try await withTimeLimit(.seconds(10), "connectRetrying to \(configuration)") {
                    try await AMQPConnection.connectRetrying(
                        configuration, recovery: RecoveryPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50)),
                        logger: quietLogger)
                }
            }
            #expect(error?.code == .authenticationFailed, "\(String(describing: error))")
            #expect(error?.isTransient == false)
        }
    }

    // Failed before: rabbitmq-c refuses a heartbeat above 65535 before it answers the broker, with a
    // library error that was reported as a lost connection, transient: `connectRetrying` retried it for ever.
    @Test("connection settings rabbitmq-c refuses are .invalidConfiguration, which connectRetrying does not retry")
    func settingsRefusedByTheLibrary() async throws {
        var configuration = try AMQPConfiguration(url: TestBroker.url)
        configuration.heartbeat = 70_000
        let error = await amqpError { _ = try await AMQPConnection.connect(configuration, logger: quietLogger) }
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))")
        #expect(error?.message.contains("heartbeat 70000") == true, "\(String(describing: error))")
        let retried = await amqpError {
            _ = try await withTimeLimit(.seconds(10), "connectRetrying with heartbeat 70000") { [configuration] in
                try await AMQPConnection.connectRetrying(
                    configuration, recovery: RecoveryPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(50)),
                    logger: quietLogger)
            }
        }
        #expect(retried?.code == .invalidConfiguration, "\(String(describing: retried))")
    }

    // Failed before: the process stopped ("Not enough bits to represent the passed value") converting the
    // frame size to the C int rabbitmq-c takes; run alone, this test took the whole test run down.
    @Test("a connection setting past a C int is .invalidConfiguration, not a crash")
    func settingsPastACInt() async throws {
        var configuration = try AMQPConfiguration(url: TestBroker.url)
        configuration.frameMax = 3_000_000_000
        let error = await amqpError { _ = try await AMQPConnection.connect(configuration, logger: quietLogger) }
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))")
        #expect(error?.message.contains("frame_max 3000000000") == true, "\(String(describing: error))")
    }

    // Failed before: a port past a C int stopped the process at the conversion (this test crashed), and one
    // past 65535 was a failed connect, transient, which `connectRetrying` retried for ever.
    @Test("a port set in code outside 1…65535 is .invalidConfiguration, not a crash nor a retried connect",
          arguments: [70_000, 1 << 40])
    func portOutOfRange(_ port: Int) async throws {
        var configuration = try AMQPConfiguration(url: TestBroker.url)
        configuration.port = port
        let error = await amqpError { _ = try await AMQPConnection.connect(configuration, logger: quietLogger) }
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))")
        #expect(error?.message.contains("port \(port)") == true, "\(String(describing: error))")
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
