import AMQPTransport
import ArgumentParser
import Foundation
import Logging
import SagaEndpoint
import SagaOperations

/// `errors list|show|replay|delete|purge`: the operator's view of an error queue.
struct ErrorsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "errors",
        abstract: "Read, replay, delete and purge an error queue (default transfers.error).",
        discussion: """
            A message lands in an error queue when it cannot be processed: unparseable, of a type nobody \
            handles, without message_id or type, too large, or failing after all retries. It keeps its body \
            and properties (same message_id) and gains headers: x-error-reason, x-error-type, \
            x-original-queue, x-attempts, x-first-failure, x-last-failure, x-host (and x-replays once it was \
            replayed and failed again). An event the broker kept refusing (a full queue) names \
            x-original-exchange and x-original-routing-key instead of x-original-queue. Replay publishes it \
            back to its original queue, or exchange (confirmed), before \
            removing it; the endpoint's inbox drops a message replayed twice. `replay --all` replays what the queue held when it started, each message id \
            once: a replayed message that fails again and a second copy of an id stay in the queue; a message \
            that cannot be replayed (no x-original-queue nor x-original-exchange, its original queue is gone, \
            or the broker refuses this user the publish to its exchange) stays too, is named on stderr, and \
            makes the exit status 2. `delete ID` removes every copy with that id (a \
            message to discard) and leaves the others in the queue, so they can still be replayed.

            The commands work on error queues only (a name ending in .error): --any-queue lets them read, \
            replay, delete or purge another queue, such as a live input queue.
            """,
        subcommands: [List.self, Show.self, Replay.self, Delete.self, Purge.self])

    /// `list` and `replay --all` take only the copies these match (all given must match).
    struct FilterOptions: ParsableArguments {
        @Option(help: ArgumentHelp("Only copies with this x-error-type (e.g. MalformedMessage, SagaNotFound).",
                                   valueName: "kind"))
        var errorType: String?
        @Option(help: ArgumentHelp("Only copies whose x-original-queue is this queue (commands and replies).",
                                   valueName: "queue"))
        var originalQueue: String?
        @Option(help: ArgumentHelp(
            "Only copies of events published to this exchange (x-original-exchange).",
            discussion: "An event the broker kept refusing names its exchange, not a queue: --original-queue never matches it.",
            valueName: "exchange"))
        var originalExchange: String?
        @Option(help: ArgumentHelp("Only copies of this message type (the type property).", valueName: "type"))
        var messageType: String?

        // A copy names a queue or an exchange, never both: together they matched nothing, silently.
        func validate() throws {
            if originalQueue != nil, originalExchange != nil {
                throw ValidationError("--original-queue and --original-exchange select different copies (a command "
                    + "or reply names its queue, an event its exchange): give one of them")
            }
        }

        var filter: ErrorQueueFilter {
            ErrorQueueFilter(errorType: errorType, originalQueue: originalQueue, originalExchange: originalExchange,
                             messageType: messageType)
        }
    }

    struct QueueOptions: ParsableArguments {
        /// The reference app's: another endpoint's operator must name theirs.
        static let defaultQueue = "transfers.error"
        @Option(name: .customLong("queue"), help: "The error queue (a name ending in \(EndpointConfiguration.errorQueueSuffix)).")
        var queue = QueueOptions.defaultQueue
        @Flag(name: .customLong("any-queue"),
              help: "Work on --queue even if it is not an error queue (e.g. a live input queue).")
        var anyQueue = false

        func validate() throws {
            guard anyQueue || EndpointConfiguration.isErrorQueue(queue) else {
                throw ValidationError("'\(queue)' is not an error queue (error queues are named <input queue>"
                    + "\(EndpointConfiguration.errorQueueSuffix)); pass --any-queue to work on it anyway")
            }
        }
    }

    struct List: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "One JSON object per message (id, type, reason, attempts, original queue or exchange and routing key, times); the messages stay.")
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @OptionGroup var target: QueueOptions
        @OptionGroup var only: FilterOptions
        @Option(help: "At most this many messages (1 or more); stderr says when the queue holds more.") var limit = 100

        // 0 or less listed nothing and exited 0: an empty error queue, as far as the operator could tell.
        func validate() throws {
            guard limit >= 1 else { throw ValidationError("--limit must be 1 or more (got \(limit))") }
        }

        func run() async throws {
            try await ErrorsCommand.withAdmin(try brokerURL(), try bootstrapLogging(), target) { admin in
                // It prints no body: holding them would cost the size of every message listed.
                let filter = only.filter
                let listing = try await admin.browse(limit: limit, bodies: false, filter: filter)
                for entry in listing.entries { printLine(try ErrorsCommand.json(entry, withBody: false)) }
                // On stderr, as the notes below: stdout stays one entry per line for scripts. Before, a list
                // cut at the limit looked like the whole queue.
                if !filter.isEmpty {
                    if listing.entries.count >= limit {
                        printError("note: listed the first \(listing.entries.count) matching messages of the "
                            + "\(listing.queued) in \(target.queue); more may match (use --limit N for more)")
                    }
                } else if listing.queued > limit {
                    printError("note: listed the first \(listing.entries.count) of \(listing.queued) messages in "
                        + "\(target.queue) (use --limit N for more)")
                }
                // Still exit 0: what is listed is right, but the operator should know it is not all.
                if listing.otherConsumers > 0 {
                    let consumers = listing.otherConsumers == 1 ? "1 other consumer was"
                        : "\(listing.otherConsumers) other consumers were"
                    printError("note: \(consumers) attached to \(target.queue) when the list started; messages they "
                        + "hold unacknowledged are not listed (stop them and list again to see them)")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(abstract: "One message with its headers and body, by message id.")
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @OptionGroup var target: QueueOptions
        @Argument(help: "The message id.") var messageId: String

        func validate() throws {
            try ErrorsCommand.checkNamed(messageId)
        }

        func run() async throws {
            try await ErrorsCommand.withAdmin(try brokerURL(), try bootstrapLogging(), target) { admin in
                guard let entry = try await admin.show(messageId: messageId) else {
                    throw CLIError("no message \(messageId) in \(target.queue)")
                }
                printLine(try ErrorsCommand.json(entry, withBody: true, pretty: true))
            }
        }
    }

    struct Replay: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(abstract: "Move a message (or --all) back to its original queue (an event's copy: its exchange).")
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @OptionGroup var target: QueueOptions
        @OptionGroup var only: FilterOptions
        @Argument(help: "The message id (omit with --all).") var messageId: String?
        @Flag(help: ArgumentHelp(
            "Replay every message the error queue holds when the command starts, each message id once.",
            discussion: "One that cannot be replayed stays in the queue, is named on stderr, and makes the exit status 2."))
        var all = false
        @Flag(help: ArgumentHelp(
            "With --all: delete further copies of an id replayed in this run instead of leaving them.",
            discussion: "The endpoint's inbox would drop them once the first is handled."))
        var dropRepeats = false

        func validate() throws {
            if let messageId { try ErrorsCommand.checkNamed(messageId) }
            if messageId == nil, !all { throw ValidationError("give a message id or --all") }
            if messageId != nil, all { throw ValidationError("give a message id or --all, not both") }
            if !all, !only.filter.isEmpty || dropRepeats {
                throw ValidationError("--error-type, --original-queue, --original-exchange, --message-type and --drop-repeats go with --all")
            }
        }

        func run() async throws {
            try await ErrorsCommand.withAdmin(try brokerURL(), try bootstrapLogging(), target) { admin in
                if all {
                    let outcome = try await admin.replayAll(filter: only.filter, dropRepeats: dropRepeats) { failure in
                        // The id and the reason (quoting x-original-queue) are a publisher's: one visible line.
                        let id = failure.messageId.isEmpty ? "a message without message id" : failure.messageId
                        printError(PrintableText.oneLine("skipped \(id): \(failure.why); it stays in \(failure.errorQueue)"))
                    }
                    // What stays: the skipped messages, second copies of ids replayed in this run, and
                    // replayed messages that failed again and are back already; `errors list` shows them.
                    let skipped = outcome.skipped.count
                    let dropped = dropRepeats ? ", dropped \(outcome.droppedRepeats) further copies of ids replayed" : ""
                    let unmatched = only.filter.isEmpty ? "" : ", left \(outcome.unmatched) the filter does not match"
                    // The copies for those exchanges were skipped unpublished, each named on stderr.
                    let refused = outcome.refusedExchanges.isEmpty ? "" : "; this user may not publish to "
                        + outcome.refusedExchanges.map { $0.isEmpty ? "the default exchange" : "exchange '\($0)'" }
                            .joined(separator: ", ")
                    printLine("replayed \(outcome.replayed) message(s) from \(target.queue), skipped \(skipped) that "
                        + "cannot be replayed\(skipped > 0 ? " (named on stderr)" : "")\(dropped)\(unmatched)\(refused); "
                        + "\(try await admin.count()) in it now")
                    // As `list`: the count above leaves out what other consumers hold, which this run never
                    // saw; the operator would take the queue for done.
                    if outcome.otherConsumers > 0 {
                        let consumers = outcome.otherConsumers == 1 ? "1 other consumer was"
                            : "\(outcome.otherConsumers) other consumers were"
                        printError("note: \(consumers) attached to \(target.queue) when the replay started; messages "
                            + "they hold unacknowledged were not replayed (stop them and replay again)")
                    }
                    if !outcome.skipped.isEmpty { throw ExitCode(2) }
                } else if let messageId {
                    guard try await admin.replay(messageId: messageId) else {
                        throw CLIError("no message \(messageId) in \(target.queue)")
                    }
                    printLine("replayed \(messageId)")
                }
            }
        }
    }

    struct Purge: AsyncParsableCommand, BrokerCommand, OperatorLogging {
        static let configuration = CommandConfiguration(abstract: "Delete every message in the error queue.")
        @OptionGroup var amqp: AMQPOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @OptionGroup var target: QueueOptions

        func run() async throws {
            try await ErrorsCommand.withAdmin(try brokerURL(), try bootstrapLogging(), target) { admin in
                printLine("purged \(try await admin.purge()) message(s) from \(target.queue)")
            }
        }
    }

    /// Refuses an empty message id, for `show`, `replay` and `delete`. `list` prints a message without
    /// message id as `"messageId":""`; looking for that id matched nothing (the property is absent, not
    /// empty), so `show ""` said "no message  in transfers.error" about a message just listed.
    static func checkNamed(_ messageId: String) throws {
        guard messageId.isEmpty else { return }
        throw ValidationError("the message id must not be empty (a message without message id cannot be named: "
            + "`replay --all` replays it with the others)")
    }

    static func withAdmin(_ url: String, _ logger: Logger, _ target: QueueOptions,
                          _ body: (ErrorQueueAdmin) async throws -> Void) async throws {
        let connection = try await BrokerConnection.open(url: url, name: "saga-endpoint-errors", logger: logger)
        do {
            _ = try await connection.checkQueue(target.queue)
            try await body(ErrorQueueAdmin(connection: connection, errorQueue: target.queue))
        } catch let error as AMQPError where error.replyCode == 404 {
            await connection.close()
            throw CLIError(missingQueueMessage(target.queue, url: url))
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    /// Names the vhost, and for the default queue says it is the reference app's: a user's endpoint run
    /// without --queue was told only "error queue 'transfers.error' does not exist", a queue they never named.
    static func missingQueueMessage(_ queue: String, url: String) -> String {
        let vhost = (try? AMQPConfiguration(url: url).vhost).map { " in vhost '\($0)'" } ?? ""
        var message = "error queue '\(queue)' does not exist\(vhost)"
        if queue == QueueOptions.defaultQueue {
            message += " (it is the reference app's, the default of --queue: name your endpoint's error queue, "
                + "<input queue>\(EndpointConfiguration.errorQueueSuffix), with --queue)"
        }
        return message
    }

    /// The AMQP properties other than the headers, by their AMQP names; absent ones left out.
    static func properties(_ p: BasicProperties) -> [String: Any] {
        var object: [String: Any] = [:]
        object["content_type"] = p.contentType
        object["content_encoding"] = p.contentEncoding
        object["delivery_mode"] = p.deliveryMode.map { $0 == .persistent ? 2 : 1 }
        object["priority"] = p.priority.map { Int($0) }
        object["correlation_id"] = p.correlationId
        object["reply_to"] = p.replyTo
        object["expiration"] = p.expiration
        object["message_id"] = p.messageId
        object["timestamp"] = p.timestamp.map { Int(clamping: $0) }
        object["type"] = p.type
        object["user_id"] = p.userId
        object["app_id"] = p.appId
        object["cluster_id"] = p.clusterId
        return object
    }

    /// A header value as JSON: numbers, booleans and text as themselves, bytes as text when they are UTF-8
    /// (else `{"base64": …}`: as a bare base64 string it read as a text header), tables and arrays nested.
    static func jsonValue(_ value: FieldValue) -> Any {
        if let integer = value.intValue { return integer }   // every integer width, timestamps too
        switch value {
        case .bool(let v): return v
        case .float(let v): return v.isFinite ? Double(v) : "\(v)"   // JSON has no NaN or infinity
        case .double(let v): return v.isFinite ? v : "\(v)"
        case .decimal(let scale, let v): return Double(v) / pow(10, Double(scale))
        case .string(let v): return v
        case .bytes(let d): return String(data: d, encoding: .utf8) ?? ["base64": d.base64EncodedString()]
        case .table(let table): return table.mapValues(jsonValue)
        case .array(let items): return items.map(jsonValue)
        case .void: return NSNull()
        default: return "\(value)"   // an unsigned 64-bit value beyond Int
        }
    }

    static func json(_ entry: ErrorQueueEntry, withBody: Bool, pretty: Bool = false) throws -> String {
        var object: [String: Any] = ["messageId": entry.messageId]
        object["type"] = entry.type
        object["originalQueue"] = entry.originalQueue
        object["originalExchange"] = entry.originalExchange
        object["originalRoutingKey"] = entry.originalRoutingKey
        object["reason"] = entry.reason
        object["errorType"] = entry.errorType
        object["attempts"] = entry.attempts
        object["firstFailure"] = entry.firstFailure
        object["lastFailure"] = entry.lastFailure
        object["host"] = entry.host
        object["replays"] = entry.replays
        object["correlationId"] = entry.properties.correlationId
        object["replyTo"] = entry.properties.replyTo
        if withBody {
            // `show` promises the headers and the body: every AMQP property and header as it is, and a
            // body that is not text in base64 (decoding it as UTF-8 replaced bytes for good).
            object["properties"] = properties(entry.properties)
            object["headers"] = (entry.properties.headers ?? [:]).mapValues(jsonValue)
            if let json = try? JSONSerialization.jsonObject(with: entry.body, options: [.fragmentsAllowed]) {
                object["body"] = json
            } else if let text = String(data: entry.body, encoding: .utf8) {
                object["bodyText"] = text
            } else {
                object["bodyBase64"] = entry.body.base64EncodedString()
            }
        }
        return try JSONText.render(object, pretty: pretty)
    }
}
