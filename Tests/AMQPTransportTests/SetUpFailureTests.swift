// Failures right after the login, while the connection sets up its publish channel (channel.open,
// confirm.select): which of them `connectRetrying` waits out and which it reports at once, as for the
// handshake (`AMQPError.setUp`).
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Connect failures after the login")
struct SetUpFailureTests {
    @Test("a socket dropped or a connection closed with 320 at channel.open is transient; connectRetrying retries it",
          arguments: [SetUpRefusal.dropAtChannelOpen, .closeConnectionAtChannelOpen(.forced)])
    func transientSetUpFailure(_ refusal: SetUpRefusal) async throws {
        let listener = try ClosingListener(afterLogin: refusal)
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.isTransient == true, "\(String(describing: error))")
        #expect(error?.operation?.contains("channel.open") == true, "\(String(describing: error))")

        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect(gaveUp == nil, "connectRetrying gave up: \(String(describing: gaveUp))")
    }

    // Failed before: any connection.close after the login was a transient `.connectionClosed`, so a broker
    // that refuses the client's channels the same way every time (its channel_max reached, a protocol
    // error) was retried by `connectRetrying` for ever, logged as "broker closed the connection".
    @Test("a connection closed at channel.open with a code no retry fixes is .handshakeFailed; connectRetrying throws at once",
          arguments: SetUpFailureTests.permanentCloses)
    func permanentSetUpClose(_ close: HandshakeClose) async throws {
        let listener = try ClosingListener(afterLogin: .closeConnectionAtChannelOpen(close))
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code == .handshakeFailed, "\(String(describing: error))")
        #expect(error?.replyCode == close.code, "\(String(describing: error))")
        #expect(error?.isTransient == false, "\(String(describing: error))")
        #expect(error?.message.contains(close.text) == true, "\(String(describing: error))")
        #expect(error?.operation?.contains("channel.open") == true, "\(String(describing: error))")

        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect((gaveUp as? AMQPError)?.code == .handshakeFailed, "\(String(describing: gaveUp))")
        #expect(listener.accepted == 2, "connectRetrying tried \(listener.accepted - 1) times")
    }

    @Test("a channel closed at confirm.select is reported as the broker's channel error; connectRetrying throws at once")
    func refusedConfirmSelect() async throws {
        let refusal = HandshakeClose(code: 403, text: "ACCESS_REFUSED - confirm.select refused")
        let listener = try ClosingListener(afterLogin: .closeChannelAtConfirmSelect(refusal))
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code == .channelClosed, "\(String(describing: error))")
        #expect(error?.replyCode == 403)
        #expect(error?.operation == "confirm.select", "\(String(describing: error))")
        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect((gaveUp as? AMQPError)?.replyCode == 403, "\(String(describing: gaveUp))")
    }

    /// Connection closes after the login that the next attempt gets again, with texts like RabbitMQ's.
    static let permanentCloses = [
        HandshakeClose(code: 530, text: "NOT_ALLOWED - number of channels opened (1) has reached the negotiated channel_max (1)"),
        HandshakeClose(code: 504, text: "CHANNEL_ERROR - second 'channel.open' seen"),
        HandshakeClose(code: 503, text: "COMMAND_INVALID - unknown method"),
    ]
}

extension ClosingListener {
    /// Runs `connectRetrying` against this listener until it connected three more times after the first
    /// attempt (then cancels it: nil) or gave up (its error).
    func connectRetryingGivesUp(url: String) async throws -> (any Error)? {
        let outcome = Box<(any Error)?>(nil)
        let configuration = try AMQPConfiguration(url: url)
        let attemptsBefore = accepted
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
            self.accepted >= attemptsBefore + 4 || outcome.withLock { $0 } != nil
        }
        let gaveUp = outcome.withLock { $0 }
        retrying.cancel()
        _ = await retrying.value
        return gaveUp
    }
}
