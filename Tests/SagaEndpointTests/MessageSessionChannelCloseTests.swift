import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// `MessageSession` when the broker closes the publishing channel for one message: every other message not
/// confirmed on that channel fails with the same close, and must not be reported as that message's error.
@Suite("Message session: a channel closed for another message", .timeLimit(.minutes(4)))
struct MessageSessionChannelCloseTests {
    static func command(_ index: Int) throws -> PublishRequest {
        try MessageSession.command(TransferRequested(transferId: "t-\(index)", fromAccount: "a", toAccount: "b", amount: 1),
                                   to: "transfers", messageId: "cmd-\(index)")
    }

    @Test("a batch with commands and an event to a missing exchange: exchangeNotFound names the event, not a command")
    func batchNamesTheCulprit() async throws {
        let harness = try await EndpointHarness.make()
        let session = MessageSession(connection: harness.connection)
        let event = try MessageSession.event(TransferCompleted(transferId: "t-x", amount: 1, fees: 0),
                                             to: "no.such.exchange", messageId: "the-event")
        let commands = try (0..<20).map(Self.command)
        do {
            try await session.send(commands + [event])
            Issue.record("an event to a missing exchange was reported sent")
        } catch {
            #expect(error.code == .exchangeNotFound)
            #expect(error.messageId == "the-event")
            #expect(error.destination == "exchange 'no.such.exchange' with routing key '\(TransferCompleted.messageType)'")
        }
        await harness.tearDown()
    }

    @Test("concurrent sends on one session: one event to a missing exchange does not fail the others' commands")
    func concurrentSendsUnaffected() async throws {
        let harness = try await EndpointHarness.make()
        let session = MessageSession(connection: harness.connection)
        let count = 30
        let wrong: [MessageSessionError] = try await withThrowingTaskGroup(of: [MessageSessionError].self) { group in
            group.addTask {
                for index in 0..<count {
                    do {
                        try await session.publish(TransferCompleted(transferId: "t-\(index)", amount: 1, fees: 0),
                                                  to: "no.such.exchange")
                    } catch let error as MessageSessionError where error.code == .exchangeNotFound {
                        continue
                    }
                }
                return []
            }
            group.addTask {
                var failures: [MessageSessionError] = []
                for index in 0..<count {
                    do {
                        try await session.send([try Self.command(index)])
                    } catch let error as MessageSessionError {
                        failures.append(error)
                    }
                }
                return failures
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(wrong.isEmpty, "commands to an existing queue failed: \(wrong)")
        let ids = try await harness.drain("transfers").compactMap(\.properties.messageId)
        #expect(Set(ids) == Set((0..<count).map { "cmd-\($0)" }))
        await harness.tearDown()
    }
}
