// A session whose connection was closed by its owner, and a call whose task is cancelled, end with errors
// that say so. Failed before: both were `.notConfirmed`, which tells the caller to send the message again
// (on a session that can never send again, or for a request the caller gave up).
import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

@Suite("Message session: closed and cancelled", .timeLimit(.minutes(3)))
struct MessageSessionEndingTests {
    let request = TransferRequested(transferId: "t-1", fromAccount: "a", toAccount: "b", amount: 1)

    @Test("a send on a session whose connection was closed is .closed")
    func closedSession() async throws {
        let harness = try await EndpointHarness.make()
        let session = try await MessageSession.connect(url: harness.url)
        await session.close()
        do {
            try await session.send(request, to: "transfers", messageId: "after-close")
            Issue.record("a send on a closed session was reported sent")
        } catch {
            #expect(error.code == .closed, "\(error)")
            #expect(error.messageId == "after-close")
        }
        await harness.tearDown()
    }

    @Test("a send waiting for a lost connection, cancelled, is .cancelled")
    func cancelledWhileWaiting() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        let session = try await MessageSession.connect(url: node.url, connectionName: "session-cancelled")
        try await session.connection.declareQueue(QueueDeclaration(name: "transfers"))
        try await runOnThread { try node.stop() }
        try await waitUntil(timeout: .seconds(20)) { await !session.connection.isConnected }
        let request = request
        let sending = Task { () -> MessageSessionError? in
            do throws(MessageSessionError) {
                try await session.send(request, to: "transfers", messageId: "cancelled")
                return nil
            } catch {
                return error
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        sending.cancel()
        let outcome = await sending.value
        let error = try #require(outcome, "the send succeeded with the broker stopped")
        #expect(error.code == .cancelled, "\(error)")
        #expect(error.messageId == "cancelled")
        #expect(error.reason.contains("send it again with the same message id"), "\(error)")
        await session.close()
    }

    // Failed before: the reason said only "not confirmed within …" with the broker's 530 and the advice to
    // send again, which cannot get through while the broker refuses the login.
    @Test("a reconnect the broker refuses (the vhost deleted): notConfirmed saying an operator must act")
    func refusedReconnect() async throws {
        let (vhost, url) = try await runOnThread { try TestBroker.makeVhost() }
        let connection = try await AMQPConnection.connect(
            url: url, connectionName: "session-refused",
            recovery: RecoveryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200)))
        let session = MessageSession(connection: connection, resendWindow: .seconds(2))
        try await connection.declareQueue(QueueDeclaration(name: "transfers"))
        try await runOnThread { try TestBroker.deleteVhost(vhost) }
        try await waitUntil(timeout: .seconds(20)) { await !connection.isConnected }
        do {
            try await session.send(request, to: "transfers", messageId: "refused")
            Issue.record("a send into a deleted vhost was reported sent")
        } catch {
            #expect(error.code == .notConfirmed, "\(error)")
            #expect(error.reason.contains("refuses the reconnect"), "\(error)")
            #expect(error.reason.contains("operator"), "\(error)")
            #expect(error.underlying?.isTransient == false, "\(error)")
        }
        await connection.close()
    }
}
