// A broker that stops answering (frozen, a hung VM, a cut network) while a connection is closed.
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Closing a connection to a broker that does not answer", .timeLimit(.minutes(3)))
struct UnansweredCloseTests {
    // A code review: close() waited the whole RPC timeout (30 s) for the close-ok of a broker that does not
    // answer, once per connection, so an endpoint's shutdown (two connections) overran its 30 s limit.
    @Test("close() gives up on the close-ok after a few seconds, not the RPC timeout")
    func closeDoesNotWaitTheRPCTimeout() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        // A long heartbeat: the freeze must not be noticed (and the socket dropped) before the close.
        let connection = try await AMQPConnection.connect(url: "\(node.url)?heartbeat=600", connectionName: "unanswered-close")
        // Stopped, not just sent SIGSTOP: the VM answers for a moment after kill(2), and a close answered
        // then would pass without testing the unanswered case.
        let pid = try await runOnThread { try node.freeze() }
        defer { kill(pid, SIGCONT) }
        let closed = Flag()
        Task { await connection.close(); closed.set() }
        try await waitUntil(timeout: .seconds(15), message: "close to return although the broker does not answer") {
            closed.isSet
        }
    }
}
