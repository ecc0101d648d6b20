import ArgumentParser
import SagaEndpoint

extension ErrorsCommand {
    /// `errors delete ID`: discards one message and leaves the others, so an operator need not replay the
    /// good ones before a purge (purging first lost them).
    struct Delete: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "Remove the message(s) with this message id from the error queue; the others stay, in order.",
            discussion: """
                Every copy with that id (a message can be error-queued twice under one id; a copy left \
                behind would be replayed by the next `replay --all`). Each removal is confirmed by the broker \
                before it is counted. Exit status 1 when no message has that id.
                """)
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @OptionGroup var target: QueueOptions
        @Argument(help: "The message id.") var messageId: String

        // No message can be told by an empty id; a pass over the whole queue would only say so at the end.
        func validate() throws {
            try ErrorsCommand.checkNamed(messageId)
        }

        func run() async throws {
            try await ErrorsCommand.withAdmin(try brokerURL(), try bootstrapLogging(), target) { admin in
                let deletion = try await admin.delete(messageId: messageId)
                guard deletion.deleted > 0 else { throw CLIError("no message \(messageId) in \(target.queue)") }
                printLine("deleted \(deletion.deleted) message(s) with id \(messageId) from \(target.queue); "
                    + "\(try await admin.count()) in it now")
                // As `list` and `replay --all`: what is reported is right, but it may not be every copy.
                if deletion.otherConsumers > 0 {
                    let consumers = deletion.otherConsumers == 1 ? "1 other consumer was"
                        : "\(deletion.otherConsumers) other consumers were"
                    printError("note: \(consumers) attached to \(target.queue) when the delete started; a copy "
                        + "they hold unacknowledged was not deleted (stop them and delete again)")
                }
                if deletion.unseen > 0 {
                    printError("note: \(deletion.unseen) of the messages \(target.queue) held did not arrive "
                        + "(another consumer may have taken or be holding them); a copy among them was not deleted")
                }
            }
        }
    }
}
