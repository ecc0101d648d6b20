// Unit tests of the saga-endpoint executable's demo workload and command-line options (no broker).
// Compiled only with SAGA_ENDPOINT_CLI_TESTS and a test-target dependency on "saga-endpoint" (see
// CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import AMQPTransport
import ArgumentParser
import Foundation
import MoneyTransfer
@testable import saga_endpoint
import Sagas
import Testing

@Suite struct CLIDemoWorkloadTests {
    // Failed before: the rate counted from the demo's start, processes starting up included (a review
    // saw "134/s" on the progress line and 897 transfers/s in the summary of the same run).
    @Test func theProgressRateCountsFromTheFirstRequestLikeTheSummary() {
        let start = ContinuousClock.now
        let progress = DemoTracker.Progress(ended: 500, total: 1000, payouts: 1, batches: 2, stalled: 0,
                                            startedAt: start + .seconds(8))
        #expect(ProgressReporter.line(progress, start: start, now: start + .seconds(10))
                == "500/1000 transfers, 1/2 payouts, 250/s, 10 s")
        // Once all have ended, up to the last one (make demo showed 402/s against 1,746 in its summary).
        let done = DemoTracker.Progress(ended: 1000, total: 1000, payouts: 2, batches: 2, stalled: 0,
                                        startedAt: start + .seconds(8), lastTerminalAt: start + .seconds(9))
        #expect(ProgressReporter.line(done, start: start, now: start + .seconds(12))
                == "1000/1000 transfers, 2/2 payouts, 1000/s, 12 s")
    }

    @Test func workloadHasEveryTransferOnceAndTheRequestedDuplicates() throws {
        let workload = try DemoWorkload(singles: 200, batchCount: 4, batchSize: 5, duplicateRate: 0.05, seed: 7)
        #expect(workload.transfers.count == 220)
        #expect(Set(workload.transfers.map(\.transferId)).count == 220)
        #expect(workload.batches.count == 4 && workload.batches.values.allSatisfy { $0.count == 5 })
        #expect(workload.duplicates == 10)

        let originals = workload.publications.filter { !$0.isDuplicate }
        let duplicates = workload.publications.filter(\.isDuplicate)
        #expect(originals.count == 204)
        #expect(duplicates.count == 10)
        #expect(originals.flatMap(\.starts).count == 220)
        // A duplicate is the same message (same message id) published after its original.
        for duplicate in duplicates {
            let id = try #require(duplicate.request.message.properties.messageId)
            let positions = workload.publications.indices.filter { workload.publications[$0].request.message.properties.messageId == id }
            #expect(positions.count == 2)
            #expect(workload.publications[positions[0]].isDuplicate == false)
            #expect(workload.publications[positions[1]].request == duplicate.request)
        }
        let messageIds = originals.compactMap(\.request.message.properties.messageId)
        #expect(Set(messageIds).count == originals.count)
    }

    @Test func requestsFollowTheWireContract() throws {
        let workload = try DemoWorkload(singles: 20, batchCount: 1, batchSize: 3, duplicateRate: 0, seed: 1)
        for publication in workload.publications {
            let properties = publication.request.message.properties
            #expect(publication.request.exchange == "" && publication.request.mandatory)
            #expect(properties.contentType == "application/json")
            #expect(properties.deliveryMode == .persistent)
            #expect(properties.messageId?.isEmpty == false)
            switch properties.type {
            case TransferRequested.messageType:
                #expect(publication.request.routingKey == MoneyTransferApp.transfersQueue)
                let request = try MessageCoding.decode(TransferRequested.self, from: publication.request.message.body,
                                                       messageType: TransferRequested.messageType)
                #expect(publication.starts == [request.transferId])
            case PayoutRequested.messageType:
                #expect(publication.request.routingKey == MoneyTransferApp.payoutsQueue)
                let request = try MessageCoding.decode(PayoutRequested.self, from: publication.request.message.body,
                                                       messageType: PayoutRequested.messageType)
                #expect(publication.starts == request.transfers.map(\.transferId))
            default:
                Issue.record("unexpected type \(properties.type ?? "nil")")
            }
        }
    }

    @Test func expectedOutcomesFollowTheBankRules() throws {
        let workload = try DemoWorkload(singles: 1000, batchCount: 0, batchSize: 1, duplicateRate: 0, seed: 99)
        let bank = BankSimulator()
        for transfer in workload.transfers {
            #expect(transfer.fromAccount != transfer.toAccount && transfer.amount > 0)
            switch transfer.expected {
            case .debitRejected: #expect(bank.isUnderfunded(transfer.fromAccount))
            case .refunded: #expect(bank.isClosed(transfer.toAccount) && !bank.isUnderfunded(transfer.fromAccount))
            case .completed: #expect(!bank.isClosed(transfer.toAccount) && !bank.isUnderfunded(transfer.fromAccount))
            }
        }
        let refunds = workload.transfers.filter { $0.expected == .refunded }.count
        let rejections = workload.transfers.filter { $0.expected == .debitRejected }.count
        #expect((50...150).contains(refunds) && (50...150).contains(rejections))
    }

    @Test func aSeedReproducesTheWorkload() throws {
        let a = try DemoWorkload(singles: 50, batchCount: 2, batchSize: 2, duplicateRate: 0.1, seed: 5)
        let b = try DemoWorkload(singles: 50, batchCount: 2, batchSize: 2, duplicateRate: 0.1, seed: 5)
        #expect(a.runId == b.runId)
        #expect(a.transfers.map(\.toAccount) == b.transfers.map(\.toAccount))
        #expect(a.publications.map(\.isDuplicate) == b.publications.map(\.isDuplicate))
    }

    @Test func trackerCountsTerminalEventsOnceAndSpotsRepeats() async throws {
        let workload = try DemoWorkload(singles: 3, batchCount: 0, batchSize: 1, duplicateRate: 0, seed: 3)
        let tracker = DemoTracker(workload)
        await tracker.published(workload.transfers.map(\.transferId), at: .now)
        for transfer in workload.transfers {
            let event: Wire.Event = switch transfer.expected {
            case .completed: .transferCompleted(.init(transferId: transfer.transferId, amount: transfer.amount, fees: 40))
            case .debitRejected: .transferFailed(.init(transferId: transfer.transferId, reason: "InsufficientFunds", refunded: 0, feesLost: 0))
            case .refunded: .transferFailed(.init(transferId: transfer.transferId, reason: "AccountClosed", refunded: transfer.amount, feesLost: 35))
            }
            await tracker.record(event, at: .now)
        }
        #expect(await tracker.isDone)
        var summary = await tracker.summary(duplicates: 0, singles: 3)
        #expect(summary.succeeded && summary.ended == 3 && summary.p50 != nil)
        await tracker.record(.transferCompleted(.init(transferId: workload.transfers[0].transferId, amount: 1, fees: 1)), at: .now)
        await tracker.record(.transferCompleted(.init(transferId: "someone-else", amount: 1, fees: 1)), at: .now)
        summary = await tracker.summary(duplicates: 0, singles: 3)
        #expect(!summary.exactlyOnce)
        #expect(summary.repeated == [workload.transfers[0].transferId])
        #expect(summary.table(target: "x").contains("ended exactly once   NO"))
    }
}

@Suite struct CLIOptionsTests {
    @Test(arguments: [
        ["topology", "export", "--log-level", "loud"],
        ["topology", "declare", "--amqp-url", "http://user:secret@host/"],
        ["topology", "declare", "--amqp-url", "amqp://host/a/b"],
        ["run", "--bank-timeout", "0"],
        ["run", "--prefetch", "0"],
        // Failed before: the flag had no upper bound, the config file's `batch-size` did (1,000,000).
        ["run", "--batch-size", "1000001"],
        ["bank", "--debit-fee", "-1"],
        ["demo", "--duplicates", "1.5"],
        ["demo", "--transfers", "0", "--batches", "0"],
        ["transfer", "--from", "", "--to", "b", "--amount", "1"],
    ])
    func invalidValuesAreRejectedAtStart(arguments: [String]) {
        #expect(throws: (any Error).self) { try SagaEndpointCLI.parseAsRoot(arguments) }
    }

    // Failed before: neither an id nor --all was answered with "give a message id or --all (not both)".
    @Test func replayWithoutAnIdOrAllSaysWhatIsMissing() {
        for (arguments, expected) in [(["errors", "replay"], "give a message id or --all"),
                                      (["errors", "replay", "m-1", "--all"], "not both")] {
            do {
                _ = try SagaEndpointCLI.parseAsRoot(arguments)
                Issue.record("accepted \(arguments)")
            } catch {
                let message = SagaEndpointCLI.message(for: error)
                #expect(message.contains(expected), "\(arguments): \(message)")
                if expected != "not both" { #expect(!message.contains("not both"), "\(arguments): \(message)") }
            }
        }
    }

    @Test func invalidURLMessageHidesThePassword() {
        do {
            _ = try SagaEndpointCLI.parseAsRoot(["topology", "verify", "--amqp-url", "http://user:secret@host/"])
            Issue.record("accepted an http URL")
        } catch {
            let message = SagaEndpointCLI.message(for: error)
            #expect(message.contains("--amqp-url") && !message.contains("secret"), "\(message)")
        }
    }

    @Test func bankAccountListsAreTrimmed() throws {
        let command = try #require(try SagaEndpointCLI.parseAsRoot(
            ["bank", "--closed-accounts", "a, b,,c", "--underfunded-prefix", ""]) as? BankCommand)
        let bank = try command.settings(environment: [:]).simulator
        #expect(bank.closedAccounts == ["a", "b", "c"])
        #expect(bank.underfundedAccountPrefix == nil && bank.closedAccountPrefix == "closed-")
        #expect(bank.isClosed("closed-x") && !bank.isUnderfunded("poor-x"))
    }

    @Test func explicitOptionsWinOverDefaults() throws {
        let command = try #require(try SagaEndpointCLI.parseAsRoot(
            ["run", "--amqp-url", "amqp://u:p@h:1234/v", "--database", "x.sqlite", "--log-level", "DEBUG",
             "--bank-timeout", "2.5", "--prefetch", "10", "--batch-size", "7", "--no-declare-topology"]) as? RunCommand)
        let settings = try command.settings(environment: [:])
        #expect(settings.endpoint.amqpURL == "amqp://u:p@h:1234/v")
        #expect(settings.endpoint.redactedAMQPURL == "amqp://u:***@h:1234/v")
        #expect(settings.endpoint.databasePath == "x.sqlite")
        #expect(settings.endpoint.logLevel == .debug)
        #expect(settings.endpoint.prefetch == 10 && settings.endpoint.batchSize == 7 && !settings.endpoint.declareTopology)
        #expect(secondsDuration(settings.bankTimeout) == .milliseconds(2500))
    }
}
#endif
