import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import Metrics
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing
import Tracing

/// A fresh vhost with the reference app's topology, a connection for the test to publish and observe,
/// and helpers to run endpoints in-process or as child processes. Nothing is shared between tests.
final class EndpointHarness: Sendable {
    let vhost: String
    let url: String
    let connection: AMQPConnection
    let directory: URL
    /// A queue bound to both event exchanges with `#`: everything the sagas publish.
    let eventsQueue = "test.events"

    static func make() async throws -> EndpointHarness {
        let (vhost, url) = try await VhostBatcher.shared.make()
        let connection = try await AMQPConnection.connect(url: url, connectionName: "test-harness")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("endpoint-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let harness = EndpointHarness(vhost: vhost, url: url, connection: connection, directory: directory)
        try await harness.declareTopology()
        return harness
    }

    private init(vhost: String, url: String, connection: AMQPConnection, directory: URL) {
        self.vhost = vhost
        self.url = url
        self.connection = connection
        self.directory = directory
    }

    func tearDown() async {
        await connection.close()
        try? await runOnThread { [vhost] in try TestBroker.deleteVhost(vhost) }
        try? FileManager.default.removeItem(at: directory)
    }

    func databasePath(_ name: String) -> String { directory.appendingPathComponent("\(name).sqlite").path }

    /// Declares a durable queue and its error queue (for tests with queues of their own).
    func declareQueue(_ name: String) async throws {
        try await connection.declareQueue(QueueDeclaration(name: name))
        try await connection.declareQueue(QueueDeclaration(name: name + ".error"))
    }

    private func declareTopology() async throws {
        for exchange in [MoneyTransferApp.transferEventsExchange, MoneyTransferApp.payoutEventsExchange] {
            try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .topic))
            try await connection.declareQueue(QueueDeclaration(name: eventsQueue))
            try await connection.bind(BindingDeclaration(source: exchange, destination: eventsQueue, routingKey: "#"))
        }
        for queue in ["transfers", "payouts", "bank", "counters"] {
            try await connection.declareQueue(QueueDeclaration(name: queue))
            try await connection.declareQueue(QueueDeclaration(name: queue + ".error"))
        }
        for key in MoneyTransferApp.payoutBindingKeys {
            try await connection.bind(BindingDeclaration(source: MoneyTransferApp.transferEventsExchange,
                                                         destination: "payouts", routingKey: key))
        }
    }

    // MARK: Messages

    /// Publishes `message` to `queue` as a client would (JSON, type, message id, persistent), confirmed.
    func send<M: Message>(_ message: M, to queue: String, messageId: String = UUID().uuidString,
                          correlationId: String? = nil, replyTo: String? = nil,
                          headers: [String: String] = [:]) async throws {
        try await connection.publish(.toQueue(queue, AMQPMessage(
            body: try MessageCoding.encode(message),
            properties: BasicProperties(contentType: "application/json",
                                        headers: headers.isEmpty ? nil : headers.mapValues { .string($0) },
                                        deliveryMode: .persistent,
                                        correlationId: correlationId, replyTo: replyTo, messageId: messageId,
                                        type: M.messageType))))
    }

    /// Publishes raw bytes and properties (for malformed-input tests).
    func sendRaw(_ body: Data, properties: BasicProperties, to queue: String) async throws {
        try await connection.publish(.toQueue(queue, AMQPMessage(body: body, properties: properties)))
    }

    /// Consumes (and acks) messages from `queue` until `count` arrived or `timeout` passed.
    func receive(from queue: String, count: Int, timeout: Duration = .seconds(20)) async throws -> [AMQPDelivery] {
        let consumer = try await connection.consume(queue: queue, prefetch: 500)
        var received: [AMQPDelivery] = []
        let deadline = ContinuousClock.now + timeout
        let collector = Task { [connection] in
            var collected: [AMQPDelivery] = []
            for try await delivery in consumer.deliveries {
                collected.append(delivery)
                try await connection.ack(delivery.tag)
                if collected.count >= count { break }
            }
            return collected
        }
        let timer = Task {
            try await Task.sleep(until: deadline)
            try await consumer.cancel()
        }
        received = (try? await collector.value) ?? []
        timer.cancel()
        try? await consumer.cancel()
        return received
    }

    /// Messages currently in `queue` (passive declare).
    func depth(_ queue: String) async throws -> Int {
        try await connection.checkQueue(queue).messageCount
    }

    // MARK: Endpoints

    /// Runs an endpoint in this process until the returned task is cancelled.
    func startEndpoint(_ registry: HandlerRegistry, queues: [String], database: String,
                       metrics: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil,
                       configure: (inout EndpointConfiguration) -> Void = { _ in }) -> Task<Void, any Error> {
        let endpoint = makeEndpoint(registry, queues: queues, database: database, metrics: metrics, tracer: tracer,
                                    configure: configure)
        return Task { try await endpoint.run() }
    }

    /// An endpoint on this harness's vhost, not started (for tests that look at it while it runs).
    func makeEndpoint(_ registry: HandlerRegistry, queues: [String], database: String,
                      metrics: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil, logger: Logger? = nil,
                      configure: (inout EndpointConfiguration) -> Void = { _ in }) -> SagaEndpoint {
        var configuration = EndpointConfiguration(amqpURL: url, inputQueues: queues, databasePath: databasePath(database))
        configuration.timeoutPollInterval = .milliseconds(50)
        configure(&configuration)
        var quiet = Logger(label: "endpoint-\(queues.first ?? "")")
        quiet.logLevel = .error
        return SagaEndpoint(configuration: configuration, registry: registry, logger: logger ?? quiet,
                            metricsFactory: metrics, tracer: tracer)
    }

    /// Stops an in-process endpoint and waits until it has returned.
    func stop(_ endpoint: Task<Void, any Error>) async {
        endpoint.cancel()
        _ = await endpoint.result
    }

    /// Runs the fixture executable (`Tests/EndpointFixture`) as a child process.
    func startFixture(app: String, database: String, environment: [String: String] = [:],
                      extraArguments: [String] = []) throws -> ChildProcess {
        try ChildProcess(
            executable: Self.fixturePath,
            arguments: ["--amqp-url", url, "--database", databasePath(database), "--app", app] + extraArguments,
            environment: environment)
    }

    static var fixturePath: String {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
            directory.deleteLastPathComponent()
        }
        let candidates = [".build/debug/saga-endpoint-fixture", ".build/x86_64-unknown-linux-gnu/debug/saga-endpoint-fixture"]
        for candidate in candidates {
            let path = directory.appendingPathComponent(candidate).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return directory.appendingPathComponent(candidates[0]).path
    }
}

extension AMQPDelivery {
    func decode<M: Message>(_ type: M.Type) throws -> M {
        try MessageCoding.decode(type, from: message.body, messageType: properties.type ?? "")
    }
}
