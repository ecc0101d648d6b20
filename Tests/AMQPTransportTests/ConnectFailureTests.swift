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
