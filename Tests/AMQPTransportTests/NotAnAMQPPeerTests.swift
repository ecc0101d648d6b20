// A URL pointing at a server of another protocol (the management UI's HTTP port, a TLS listener reached
// with amqp://) is a setting to fix, not a broker to wait for.
import CRabbitMQ
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Connecting to a peer that does not speak AMQP")
struct NotAnAMQPPeerTests {
    /// What such peers answer the client's protocol header with, before closing. (A TLS listener answers
    /// nothing and closes, as a proxy without a backend does: that stays transient.)
    static let answers: [(name: String, bytes: [UInt8])] = [
        ("an HTTP server", Array("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".utf8)),
        ("a broker of another AMQP version", Array("AMQP".utf8) + [0, 1, 0, 0]),
    ]

    // Failed before: the answer was not an AMQP frame, which rabbitmq-c reports as a library error that was
    // taken for a lost connection, transient: `connectRetrying` (an endpoint at start, and its recovery)
    // retried it for ever, with a warning per attempt that said "broker closed the connection".
    @Test("an answer that is not AMQP 0-9-1 is .handshakeFailed naming the target; connectRetrying throws at once",
          arguments: NotAnAMQPPeerTests.answers.indices)
    func notAMQP(_ index: Int) async throws {
        let (name, bytes) = Self.answers[index]
        let listener = try ClosingListener(answer: bytes)
        defer { listener.stop() }
        let url = "amqp://guest:guest@127.0.0.1:\(listener.port)/"
        let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
        #expect(error?.code == .handshakeFailed, "\(name): \(String(describing: error))")
        #expect(error?.isTransient == false, "\(name): \(String(describing: error))")
        #expect(error?.message.contains("127.0.0.1:\(listener.port)") == true, "\(name): \(String(describing: error))")
        #expect(error?.message.contains("AMQP 0-9-1") == true, "\(name): \(String(describing: error))")

        let gaveUp = try await listener.connectRetryingGivesUp(url: url)
        #expect((gaveUp as? AMQPError)?.code == .handshakeFailed, "\(name): \(String(describing: gaveUp))")
        #expect(listener.accepted == 2, "\(name): connectRetrying tried \(listener.accepted - 1) times")
    }

    // A TLS listener closes a plain connection without a word: indistinguishable from a proxy without a
    // backend, so it stays transient, but on RabbitMQ's TLS port the warning says what to use.
    @Test("a socket closed before the greeting on port 5671 without TLS hints at amqps://")
    func plainToTheTLSPort() throws {
        let lost = AMQPError(.connectionLost, message: "connection closed unexpectedly",
                             libraryStatus: AMQP_STATUS_CONNECTION_CLOSED.rawValue)
        let onTLSPort = AMQPError.handshake(lost, greetingReceived: false,
                                            configuration: try AMQPConfiguration(url: "amqp://u:p@broker:5671/"))
        #expect(onTLSPort.isTransient)
        #expect(onTLSPort.message.contains("use amqps://"), "\(onTLSPort)")
        let elsewhere = AMQPError.handshake(lost, greetingReceived: false,
                                            configuration: try AMQPConfiguration(url: "amqp://u:p@broker:5672/"))
        #expect(!elsewhere.message.contains("amqps"), "\(elsewhere)")
    }
}
