import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

/// A user who may read the error queue but not write to the default exchange (where a replay publishes):
/// the broker closes the channel with 403 ACCESS_REFUSED. `errors replay --all` stopped with exit status 1
/// and the broker's raw error, and `errors replay ID` likewise, without saying that the message is still in
/// the error queue nor what permission is missing. Now the message is reported as skipped with that reason.
/// `--all` then skips, unpublished, every other copy for that exchange and goes on with the others: it
/// stopped at the first 403, though RabbitMQ's write permission is per exchange (copies for the exchanges
/// the user may write to were left behind).
@Suite("errors replay by a user who may not publish", .timeLimit(.minutes(4)))
struct CLIErrorsReplayAccessRefusedTests {
    /// A user with read permission only (no configure, and write on what `write` matches, by default
    /// nothing) on the harness's vhost; deleted by `body`'s end.
    func withReadOnlyUser(_ harness: EndpointHarness, write: String = "",
                          _ body: (String) async throws -> Void) async throws {
        try await harness.withUser("replayer", configure: "", write: write, read: ".*") { try await body($0.url) }
    }

    @Test("replay --all names each refused message as skipped and says why; nothing moves")
    func replayAllRefused() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.parkOne("refused-1", originalQueue: "transfers")
        try await harness.parkOne("refused-2", originalQueue: "transfers")
        try await harness.parkOne("refused-3", originalQueue: "transfers")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 3 }

        try await withReadOnlyUser(harness) { url in
            let run = try await harness.errorsCommand(["replay", "--all"], url: url)
            #expect(run.status == 2, "\(run)")
            let skipLines = run.errorOutput.split(separator: "\n").filter { $0.hasPrefix("skipped ") }
            #expect(skipLines.count == 3, "\(run)")
            #expect(skipLines.first?.contains("skipped refused-1: ") == true, "\(run)")
            #expect(skipLines.first?.contains("may not publish to the default exchange") == true, "\(run)")
            #expect(skipLines.first?.contains("ACCESS_REFUSED") == true, "\(run)")
            #expect(skipLines.first?.hasSuffix("it stays in transfers.error") == true, "\(run)")
            #expect(skipLines.last?.contains("skipped refused-3: ") == true, "\(run)")
            #expect(skipLines.allSatisfy { $0.contains("may not publish to the default exchange") }, "\(run)")
            #expect(run.output.contains("replayed 0 message(s) from transfers.error, skipped 3"), "\(run)")
            #expect(run.output.contains("this user may not publish to the default exchange;"), "\(run)")
            #expect(run.output.contains("3 in it now"), "\(run)")
            #expect(!run.errorOutput.contains("Error: AMQP"), "\(run)")

            let one = try await harness.errorsCommand(["replay", "refused-2"], url: url)
            #expect(one.status == 1, "\(one)")
            #expect(one.errorOutput.contains("message refused-2 in transfers.error cannot be replayed: "), "\(one)")
            #expect(one.errorOutput.contains("may not publish to the default exchange"), "\(one)")
            #expect(one.errorOutput.contains("it stays in transfers.error"), "\(one)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 3 }
        #expect(try await harness.depth("transfers") == 0)
        let left = try await ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error").list()
        #expect(left.map(\.messageId) == ["refused-1", "refused-2", "refused-3"])
        await harness.tearDown()
    }

    // Found in review: a 403 on an event's exchange stopped the run, as if every replay would be refused,
    // and the copies for queues (the default exchange, which this user may write to) were not replayed.
    @Test("replay --all: a 403 on an event's exchange skips that exchange's copies; copies for queues are replayed")
    func replayAllRefusedOneExchange() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareExchange(ExchangeDeclaration(name: "news", kind: .topic))
        try await harness.connection.declareQueue(QueueDeclaration(name: "readers"))
        try await harness.connection.bind(BindingDeclaration(source: "news", destination: "readers", routingKey: "#"))
        try await harness.parkEvent("event-1", exchange: "news", routingKey: "sports")
        try await harness.parkOne("command-1", originalQueue: "transfers")
        try await harness.parkEvent("event-2", exchange: "news", routingKey: "weather")
        try await harness.parkOne("command-2", originalQueue: "transfers")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 4 }

        try await withReadOnlyUser(harness, write: "^amq\\.default$") { url in
            let run = try await harness.errorsCommand(["replay", "--all"], url: url)
            #expect(run.status == 2, "\(run)")
            let skipLines = run.errorOutput.split(separator: "\n").filter { $0.hasPrefix("skipped ") }
            #expect(skipLines.count == 2, "\(run)")
            #expect(skipLines.first?.contains("skipped event-1: ") == true, "\(run)")
            #expect(skipLines.last?.contains("skipped event-2: ") == true, "\(run)")
            #expect(skipLines.allSatisfy { $0.contains("may not publish to the exchange 'news'") }, "\(run)")
            #expect(run.output.contains("replayed 2 message(s) from transfers.error, skipped 2"), "\(run)")
            #expect(run.output.contains("this user may not publish to exchange 'news';"), "\(run)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers") == 2 }
        #expect(try await harness.depth("readers") == 0)
        let left = try await ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error").list()
        #expect(left.map(\.messageId) == ["event-1", "event-2"])
        await harness.tearDown()
    }

    // Found in review: RabbitMQ's topic permissions (`set_topic_permissions`) allow a user to publish to a
    // topic exchange under some routing keys and not others. A 403 for one routing key skipped, unpublished,
    // every copy for that exchange, also those under a routing key the user may publish with.
    @Test("replay --all: a 403 under one routing key of a topic exchange does not skip the copies under another")
    func replayAllRefusedOneRoutingKey() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.connection.declareExchange(ExchangeDeclaration(name: "news", kind: .topic))
        try await harness.connection.declareQueue(QueueDeclaration(name: "readers"))
        try await harness.connection.bind(BindingDeclaration(source: "news", destination: "readers", routingKey: "#"))
        try await harness.parkEvent("event-1", exchange: "news", routingKey: "sports")
        try await harness.parkEvent("event-2", exchange: "news", routingKey: "weather")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }

        try await withReadOnlyUser(harness, write: "^news$") { url in
            let user = URLComponents(string: url)!.user!
            _ = try await runOnThread {
                try TestBroker.rabbitmqctl(["set_topic_permissions", "-p", harness.vhost, user, "news", "^weather$", ".*"])
            }
            let run = try await harness.errorsCommand(["replay", "--all"], url: url)
            #expect(run.status == 2, "\(run)")
            let skipLines = run.errorOutput.split(separator: "\n").filter { $0.hasPrefix("skipped ") }
            #expect(skipLines.count == 1, "\(run)")
            #expect(skipLines.first?.contains("skipped event-1: ") == true, "\(run)")
            #expect(run.output.contains("replayed 1 message(s) from transfers.error, skipped 1"), "\(run)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("readers") == 1 }
        let left = try await ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error").list()
        #expect(left.map(\.messageId) == ["event-1"])
        await harness.tearDown()
    }
}
