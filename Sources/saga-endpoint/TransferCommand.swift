import AMQPTransport
import ArgumentParser
import Foundation
import Logging
import MoneyTransfer
import Sagas
import SagaOperations

/// `transfer`: requests one transfer.
struct TransferCommand: AsyncParsableCommand, BrokerCommand, OperatorLogging {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Send one TransferRequested to queue transfers and print its transfer id.",
        discussion: """
            With --wait, also wait for the transfer's terminal event (TransferCompleted or TransferFailed) \
            and print it as a JSON line; exit status 0 when completed, 2 when failed, 1 on timeout. \
            TransferStalled events are reported on stderr while waiting. The request's message id is derived \
            from the transfer id, so running the command again with the same --transfer-id (after a timeout, \
            a lost connection, a killed script) is dropped by the endpoint's inbox instead of moving the \
            money a second time. --timeout also bounds the broker's confirm of the request (a resource \
            alarm holds it back): past it, the outcome is unknown and the command exits 1 naming the id.
            """)

    @OptionGroup var amqp: AMQPOptions
    @OptionGroup var config: ConfigOptions
    @OptionGroup var logging: LoggingOptions
    @Option(help: "Source account.") var from: String
    @Option(help: "Target account.") var to: String
    // Unconditional: the contract lets a request carry a negative amount (it fails as InvalidRequest), and
    // `--amount -5` otherwise read "-5" as an option and stopped with "Missing value".
    @Option(parsing: .unconditional, help: "Amount in minor units.") var amount: Int
    @Option(help: "Transfer id (default: a new UUID).") var transferId: String?
    @Option(help: "Payout batch the transfer belongs to.") var batchId: String?
    @Flag(help: "Wait for the terminal event and print it.") var wait = false
    @Option(help: ArgumentHelp("Give up after this many seconds (the confirm, and with --wait the terminal event).",
                               valueName: "seconds"))
    var timeout: Double = 60

    func validate() throws {
        guard !from.isEmpty, !to.isEmpty else { throw ValidationError("--from and --to must not be empty") }
        if let transferId, transferId.isEmpty { throw ValidationError("--transfer-id must not be empty") }
        if let transferId, transferId.utf8.count > 255 {
            throw ValidationError("--transfer-id is \(transferId.utf8.count) bytes long; the wire contract allows 255")
        }
        guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    func run() async throws {
        let logger = try bootstrapLogging()
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

    /// The request's message id: one per transfer id, so any later request under it is a duplicate to the
    /// endpoint's inbox (within its deduplication window, 7 days by default), not a second transfer (a saga
    /// deletes its state when it ends, so the transfer id alone would start a second one). Also a request
    /// with other fields: with a hash of them in the id, a "corrected" retry of a transfer that had gone
    /// through after all moved the money again. A corrected request takes a new transfer id. A transfer id
    /// too long to fit (the contract allows 255 bytes, and so does a message id) is replaced by its hash.
    static func messageId(transferId: String) -> String {
        let readable = "transfer-request-\(transferId)"
        guard readable.utf8.count > 255 else { return readable }
        return "transfer-request-" + MessageIdentity.derive(from: transferId, handler: "saga-endpoint transfer",
                                                            position: "request")
    }

    private func send(id: String, on connection: AMQPConnection) async throws -> Int32 {
        let started = ContinuousClock.now
        let subscription = wait
            ? try await EventSubscription.open(on: connection, exchanges: [MoneyTransferApp.transferEventsExchange])
            : nil
        let request = TransferRequested(transferId: id, fromAccount: from, toAccount: to, amount: amount, batchId: batchId)
        let command = try Wire.command(request, to: MoneyTransferApp.transfersQueue,
                                       messageId: Self.messageId(transferId: id))
        try await publish(command, id: id, until: started + secondsDuration(timeout), on: connection)
        printLine(id)
        guard let subscription else { return 0 }

        let deadline = max(.zero, started + secondsDuration(timeout) - ContinuousClock.now)
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
                        // The event is any publisher's to send: its text is shown as one visible line.
                        printError(PrintableText.oneLine(
                            "transfer \(id) stalled: no reply to \(event.waitingFor) after \(event.attempts) attempts; still waiting"))
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
                throw CLIError("no terminal event for transfer \(id) within \(timeout) s (is `saga-endpoint run` running, "
                    + "and the bank? If a request under this transfer id was sent before, this one was dropped as a repeat "
                    + "and the first one's outcome was reported then, on transfers.events; a corrected request needs "
                    + "a new --transfer-id)")
            }
            return status
        }
    }

    /// Publishes the request and waits for its confirm until `deadline`. A resource alarm holds confirms
    /// back for as long as it lasts: without a bound the command hung without printing the id.
    private func publish(_ command: PublishRequest, id: String, until deadline: ContinuousClock.Instant,
                         on connection: AMQPConnection) async throws {
        guard try await Wire.publish([command], on: connection, until: deadline) else {
            let blocked = await connection.blockedReason.map { " (it blocks publishing: \($0))" } ?? ""
            throw CLIError("the broker did not confirm transfer \(id) within \(timeout) s\(blocked); it may or may "
                + "not have been taken: run the command again with --transfer-id \(id) (a repeat is dropped, not "
                + "a second transfer)")
        }
    }
}
