import AMQPTransport
import ArgumentParser
import Foundation
import Logging
import MoneyTransfer

/// `transfer`: requests one transfer.
struct TransferCommand: AsyncParsableCommand, BrokerCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Send one TransferRequested to queue transfers and print its transfer id.",
        discussion: """
            With --wait, also wait for the transfer's terminal event (TransferCompleted or TransferFailed) \
            and print it as a JSON line; exit status 0 when completed, 2 when failed, 1 on timeout. \
            TransferStalled events are reported on stderr while waiting.
            """)

    @OptionGroup var amqp: AMQPOptions
    @OptionGroup var config: ConfigOptions
    @OptionGroup var logging: LoggingOptions
    @Option(help: "Source account.") var from: String
    @Option(help: "Target account.") var to: String
    @Option(help: "Amount in minor units.") var amount: Int
    @Option(help: "Transfer id (default: a new UUID).") var transferId: String?
    @Option(help: "Payout batch the transfer belongs to.") var batchId: String?
    @Flag(help: "Wait for the terminal event and print it.") var wait = false
    @Option(help: ArgumentHelp("With --wait: give up after this many seconds.", valueName: "seconds"))
    var timeout: Double = 60

    func validate() throws {
        guard !from.isEmpty, !to.isEmpty else { throw ValidationError("--from and --to must not be empty") }
        if let transferId, transferId.isEmpty { throw ValidationError("--transfer-id must not be empty") }
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    func run() async throws {
        let logger = logging.bootstrap()
        let id = transferId ?? UUID().uuidString.lowercased()
        let connection = try await BrokerConnection.open(url: try brokerURL(),
                                                         name: "saga-endpoint-transfer", logger: logger)
        do {
            let status = try await send(id: id, on: connection)
            await connection.close()
            if status != 0 { throw ExitCode(status) }
        } catch {
            await connection.close()
            throw error
        }
    }

    private func send(id: String, on connection: AMQPConnection) async throws -> Int32 {
        let subscription = wait
            ? try await EventSubscription.open(on: connection, exchanges: [MoneyTransferApp.transferEventsExchange])
            : nil
        let request = TransferRequested(transferId: id, fromAccount: from, toAccount: to, amount: amount, batchId: batchId)
        try await Wire.publish([try Wire.command(request, to: MoneyTransferApp.transfersQueue)], on: connection)
        printLine(id)
        guard let subscription else { return 0 }

        let deadline = secondsDuration(timeout)
        return try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                for try await delivery in subscription.consumer.deliveries {
                    await subscription.ack(delivery)
                    switch Wire.event(delivery) {
                    case .transferCompleted(let event) where event.transferId == id:
                        printLine(Wire.jsonLine(delivery))
                        return 0
                    case .transferFailed(let event) where event.transferId == id:
                        printLine(Wire.jsonLine(delivery))
                        return 2
                    case .transferStalled(let event) where event.transferId == id:
                        printError("transfer \(id) stalled: no reply to \(event.waitingFor) after \(event.attempts) attempts; still waiting")
                    default:
                        continue
                    }
                }
                throw CLIError("the event subscription ended before transfer \(id) finished")
            }
            group.addTask {
                try await Task.sleep(for: deadline)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let status = first else {
                throw CLIError("no terminal event for transfer \(id) within \(timeout) s (is `saga-endpoint run` running, and the bank?)")
            }
            return status
        }
    }
}
