import AMQPTransport
import ArgumentParser
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas

extension SagasCommand {
    /// `sagas resend TRANSFER_ID`: publishes a live transfer's pending bank command again. A command that
    /// left queue `bank` without an answer (purged, deleted, dead-lettered and gone) is never sent again
    /// once the transfer stalled, and the transfer waits for ever; operators had to rebuild it by hand.
    struct Resend: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "Publish a live transfer's pending bank command to queue bank again, under its message id.",
            discussion: """
                Reads the TransferSaga from run's database without writing it (the endpoint may be running), \
                builds the command of its step as the saga does (DebitAccount, CreditAccount or RefundAccount; \
                message_id the state's commandMessageId, correlation_id the transfer id, reply_to transfers), \
                publishes it with confirms (mandatory: a missing queue is an error) and prints it as one JSON \
                line. The bank drops it if it handled that message id already. Exit 1 when the transfer is \
                not live or has no pending command, or when the broker did not confirm within --timeout (a \
                resource alarm holds confirms back; running the command again is safe).
                """)
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @Argument(help: "The transfer id (the TransferSaga's correlation id).") var transferId: String
        @Option(help: ArgumentHelp("Give up waiting for the broker's confirm after this many seconds.", valueName: "seconds"))
        var timeout: Double = 60

        func validate() throws {
            guard timeout.isFinite, timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds") }
        }

        func run() async throws {
            let logger = try bootstrapLogging()
            let (transfer, request) = try pendingCommand()
            let deadline = ContinuousClock.now + secondsDuration(timeout)
            let connection = try await BrokerConnection.open(url: try brokerURL(), name: "saga-endpoint-sagas-resend",
                                                             logger: logger)
            let confirmed: Bool
            do {
                confirmed = try await Wire.publish([request], on: connection, until: deadline)
            } catch {
                await connection.close()
                throw error
            }
            let blocked = confirmed ? nil : await connection.blockedReason
            await connection.close()
            guard confirmed else {
                throw CLIError("the broker did not confirm \(transfer.step.commandType) \(transfer.commandMessageId) within "
                    + "\(timeout) s\(blocked.map { " (it blocks publishing: \($0))" } ?? ""); it may or may not be in "
                    + "queue bank: running the command again is safe (the bank drops a repeat)")
            }
            printLine(try JSONText.render(Self.sent(request, step: transfer.step), pretty: false))
        }

        /// The live transfer and its pending command, or a refusal naming what was found. The store is
        /// closed before the broker is reached: the file is only read.
        private func pendingCommand() throws -> (TransferSaga, PublishRequest) {
            let path = try database.resolvedPath(config: config)
            let store = try SagaDatabase.open(path)
            defer { store.close() }
            guard let record = try store.loadSaga(type: TransferSaga.sagaType, correlationId: transferId) else {
                if let note = try SagaDatabase.otherEndpointNote(path, store) { printError("note: \(note)") }
                printError("no live \(TransferSaga.sagaType) with transfer id '\(transferId)' in \(path): it finished, "
                    + "never started, or lives in another database; nothing to resend")
                throw ExitCode.failure
            }
            let transfer: TransferSaga
            do {
                transfer = try MessageCoding.decode(TransferSaga.self, from: record.state,
                                                    messageType: TransferSaga.sagaType)
            } catch {
                throw CLIError("the state of transfer '\(transferId)' in \(path) does not decode as a "
                    + "\(TransferSaga.sagaType) (an endpoint of another version?): \(error)")
            }
            // Set when a step's command is first sent: without it there is no message id the bank knows.
            guard !transfer.commandMessageId.isEmpty else {
                printError("transfer '\(transferId)' is live but has no pending bank command (step \(transfer.step.rawValue), "
                    + "\(transfer.attempts) attempts): nothing to resend")
                throw ExitCode.failure
            }
            let request = try Wire.command(transfer.command, to: MoneyTransferApp.bankQueue,
                                           messageId: transfer.commandMessageId, correlationId: transfer.transferId,
                                           replyTo: MoneyTransferApp.transfersQueue)
            return (transfer, request)
        }

        /// What was published, as one JSON object.
        static func sent(_ request: PublishRequest, step: TransferSaga.Step) -> [String: Any] {
            let properties = request.message.properties
            return [
                "queue": request.routingKey, "step": step.rawValue, "type": properties.type ?? NSNull(),
                "messageId": properties.messageId ?? NSNull(), "correlationId": properties.correlationId ?? NSNull(),
                "replyTo": properties.replyTo ?? NSNull(), "body": SagaDatabase.embedded(request.message.body),
            ]
        }
    }
}
