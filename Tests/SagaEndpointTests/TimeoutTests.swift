import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// Timeouts are stored with their due time and delivered through the same pipeline (inbox included),
/// also when they fell due while the endpoint was down.
@Suite("Saga timeouts (fixture process)", .timeLimit(.minutes(6)))
struct TimeoutTests {
    @Test("no bank: DebitAccount re-sent with the same id 3 times, then TransferStalled once; a timeout due during downtime fires on start")
    func bankTimeoutResendsThenStalls() async throws {
        let harness = try await EndpointHarness.make()
        let arguments = ["--bank-timeout", "3"]
        let first = try await harness.startedFixture(app: "transfer", database: "sagas", extraArguments: arguments)
        try await harness.send(TransferRequested(transferId: "t-slow", fromAccount: "alice", toAccount: "bob", amount: 5),
                               to: "transfers", messageId: "req-slow")
        try await waitUntil(timeout: .seconds(30)) { try await harness.depth("bank") >= 1 }
        #expect(try await harness.terminate(first) == 0)
        // Usually 1; 2 when the machine is so loaded that the first bank timeout (3 s) fired before the stop.
        let sentBeforeStop = try await harness.depth("bank")
        let due = try #require(try await harness.withStore("sagas") {
            try $0.pendingTimeouts(sagaType: TransferSaga.sagaType, correlationId: "t-slow").first?.dueAt
        })
        // Down while the timeout falls due: nothing is sent meanwhile.
        try await Task.sleep(for: .seconds(max(0, due.timeIntervalSinceNow) + 0.5))
        #expect(try await harness.depth("bank") == sentBeforeStop)

        let second = try await harness.startedFixture(app: "transfer", database: "sagas", extraArguments: arguments)
        let restarted = ContinuousClock.now
        try await waitUntil(timeout: .seconds(8)) { try await harness.depth("bank") >= sentBeforeStop + 1 }
        #expect(ContinuousClock.now - restarted < .milliseconds(2500), "the overdue timeout fired on start, not a bank timeout later")

        // Three bank timeouts of 3 s after the restart, then the event; generous for a loaded machine.
        let stalled = try await harness.receive(from: harness.eventsQueue, count: 1, timeout: .seconds(60))
        #expect(stalled.map(\.properties.type) == [TransferStalled.messageType])
        let event = try #require(stalled.first).decode(TransferStalled.self)
        #expect(event == TransferStalled(transferId: "t-slow", waitingFor: DebitAccount.messageType, attempts: 4))
        // A bank timeout later: still stalled once, no further re-send.
        try await Task.sleep(for: .milliseconds(3500))
        #expect(try await harness.terminate(second) == 0)

        let debits = try await harness.drain("bank")
        #expect(debits.count == 4, "1 send + 3 re-sends")
        #expect(Set(debits.map(\.properties.messageId)) == [outgoingId("req-slow", "TransferSaga", "1")])
        #expect(try await harness.drain(harness.eventsQueue).isEmpty, "TransferStalled is published once")

        let transfer = try #require(try await harness.state(TransferSaga.self, "t-slow", in: "sagas"))
        #expect(transfer.stalled && transfer.attempts == 4)
        // Each timeout went through the inbox (its id is its message id) and none is left.
        // Each fired timeout asks for the next one: its id derives from the one that fired.
        var timeoutIds = [outgoingId("req-slow", TransferSaga.sagaType, "t2")]
        while timeoutIds.count < 4 { timeoutIds.append(outgoingId(timeoutIds.last!, TransferSaga.sagaType, "t2")) }
        let fired = timeoutIds.map { "'\($0)'" }.joined(separator: ", ")
        #expect(try await harness.rowCount("sagas", "inbox", where: "message_id IN (\(fired))") == 4)
        #expect(try await harness.rowCount("sagas", "timeouts") == 0)
        await harness.tearDown()
    }
}
