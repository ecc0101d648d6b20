import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// `MessageSession` when the broker closes the publishing channel for one message: that message's error says
/// whether a resend can help, and every other message not confirmed on that channel (which fails with the
/// same close) is not reported as that message's error.
@Suite("Message session: the broker closes the publishing channel", .timeLimit(.minutes(4)))
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

    @Test("no resend window left: the commands the event's missing exchange failed are not its exchangeNotFound")
    func noWindowStillNamesTheCulprit() async throws {
        let harness = try await EndpointHarness.make()
        // resendWindow zero: one attempt, so the commands failed with the event's channel close are not sent
        // again. They used to be reported as exchangeNotFound for their own queue ("the exchange does not
        // exist", "the message was not taken"), naming the first command instead of the event.
        let session = MessageSession(connection: harness.connection, resendWindow: .zero)
        let event = try MessageSession.event(TransferCompleted(transferId: "t-x", amount: 1, fees: 0),
                                             to: "no.such.exchange", messageId: "the-event")
        let commands = try (0..<20).map(Self.command)
        do {
            try await session.send(commands + [event])
            Issue.record("an event to a missing exchange was reported sent")
        } catch {
            #expect(error.code == .exchangeNotFound)
            #expect(error.messageId == "the-event")
        }
        // A call of commands alone failed by another call's missing exchange: not confirmed, never that
        // exchange's error under the command's destination.
        let wrong: [MessageSessionError] = try await withThrowingTaskGroup(of: [MessageSessionError].self) { group in
            group.addTask {
                for index in 0..<20 {
                    _ = try? await session.publish(TransferCompleted(transferId: "t-\(index)", amount: 1, fees: 0),
                                                   to: "no.such.exchange")
                }
                return []
            }
            group.addTask {
                var wrong: [MessageSessionError] = []
                for index in 20..<60 {
                    do {
                        try await session.send([try Self.command(index)])
                    } catch let error as MessageSessionError {
                        if error.code != .notConfirmed { wrong.append(error) }
                    }
                }
                return wrong
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(wrong.isEmpty, "commands failed by another message's exchange were reported as: \(wrong)")
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

    @Test("an exchange the user may not write to: accessRefused, which no resend fixes, not notConfirmed")
    func writeAccessRefused() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareExchange(ExchangeDeclaration(name: "audit.events", kind: .topic))
        _ = try await runOnThread { [vhost = harness.vhost] in
            try TestBroker.rabbitmqctl(["set_permissions", "-p", vhost, "guest", ".*", "^(amq\\.default|transfers)$", ".*"])
        }
        let session = try await MessageSession.connect(url: harness.url, connectionName: TestBroker.uniqueName("refused"))
        do {
            try await session.publish(TransferCompleted(transferId: "t-1", amount: 1, fees: 0), to: "audit.events",
                                      messageId: "no-write")
            Issue.record("an event to an exchange without write permission was reported sent")
        } catch {
            #expect(error.code == .accessRefused)
            #expect(error.messageId == "no-write")
            #expect(error.underlying?.replyCode == 403)
        }
        // The session goes on where it may write.
        try await session.send(TransferRequested(transferId: "t-2", fromAccount: "a", toAccount: "b", amount: 1),
                               to: "transfers")
        await session.close()
        await harness.tearDown()
    }
}
