// The saga endpoint with a synthetic saga (BenchSaga) that mimics TransferSaga's start, kept next to the
// real one (TransferStartLoop) because it needs none of the reference app's fixed queue names. Each
// message of queue A starts a saga: one SQLite transaction per batch writes the saga state, the inbox
// row, the outbox row and a timeout for every message (group commit), the command each saga sends goes
// to queue B with publisher confirms, and the deliveries are acked after the confirms.
import AMQPTransport
import Foundation
import Logging
import SagaEndpoint
import Sagas

struct EndpointLoop: BenchmarkCase {
    let name = "BenchSaga endpoint"

    /// The driver's opaque bodies would not decode: A gets one typed saga-starting request per message.
    func prepare(_ admin: AMQPConnection, _ context: BenchmarkContext) async throws {
        try await admin.purgeQueue(context.queueA)
        try await admin.purgeQueue(context.queueB)
        var next = 0
        while next < context.messages {
            let count = min(1000, context.messages - next)
            let requests = try (next..<next + count).map { index in
                PublishRequest.toQueue(context.queueA, AMQPMessage(
                    body: try MessageCoding.encode(BenchRequested(requestId: "r\(index)", amount: 100 + index)),
                    properties: BasicProperties(contentType: MessageCoding.contentType, deliveryMode: .transient,
                                                messageId: "r\(index)", type: BenchRequested.messageType)))
            }
            guard await admin.publish(requests).allSatisfy(\.isConfirmed) else {
                throw BenchmarkError("refilling \(context.queueA) for the endpoint was not confirmed")
            }
            next += count
        }
    }

    func run(_ context: BenchmarkContext) async throws -> RunResult {
        let logger = Logger.quiet("saga-bench-endpoint")
        let admin = try await AMQPConnection.connect(context.configuration, logger: logger)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("saga-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var registry = HandlerRegistry()
        registry.register(BenchSaga.self) { BenchSaga.define(&$0, commandsTo: context.queueB) }
        var configuration = EndpointConfiguration(
            amqpURL: Self.url(context.configuration), inputQueues: [context.queueA],
            databasePath: directory.appendingPathComponent("bench.sqlite").path)
        configuration.batchSize = context.batchSize
        configuration.prefetch = context.prefetch
        configuration.connectionName = "saga-bench-endpoint"
        let tally = BatchTally()
        let endpoint = SagaEndpoint(configuration: configuration, registry: registry, logger: logger,
                                    metricsFactory: tally)
        let running = Task { try await endpoint.run() }

        // Timed from the moment the endpoint is connected until queue B holds every command.
        while !endpoint.isReady { try await Task.sleep(for: .milliseconds(1)) }
        let started = ContinuousClock.now
        var polls = 0
        while try await admin.checkQueue(context.queueB).messageCount < context.messages {
            polls += 1
            try await Task.sleep(for: TransferTopology.completionPoll)
            if ContinuousClock.now - started > .seconds(600) {
                running.cancel()
                await admin.close()
                throw BenchmarkError("the endpoint did not move \(context.messages) messages in 10 minutes")
            }
        }
        let elapsed = ContinuousClock.now - started
        // Let the last acks go out before stopping, so the driver finds queue A empty.
        while try await admin.checkQueue(context.queueA).messageCount > 0 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        running.cancel()
        _ = await running.result
        await admin.close()
        return RunResult(elapsed: elapsed, tally: tally)
    }

    /// The URI of a configuration (the endpoint takes a URI).
    static func url(_ c: AMQPConfiguration) -> String {
        func encode(_ text: String) -> String {
            text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
        }
        let scheme = c.tls == nil ? "amqp" : "amqps"
        return "\(scheme)://\(encode(c.user)):\(encode(c.password))@\(c.host):\(c.port)/\(encode(c.vhost))"
    }
}

struct BenchRequested: Message {
    static let messageType = "BenchRequested"
    var requestId: String
    var amount: Int
}

struct BenchCommand: Message {
    static let messageType = "BenchCommand"
    var requestId: String
    var amount: Int
}

struct BenchTimeout: Message {
    static let messageType = "BenchTimeout"
}

/// A saga doing what the transfer saga does when it starts: store its state, send one command, ask for
/// a timeout.
struct BenchSaga: Saga {
    var requestId: String
    var amount: Int

    static func define(_ saga: inout SagaDefinition<BenchSaga>) {
        define(&saga, commandsTo: "bench-commands")
    }

    static func define(_ saga: inout SagaDefinition<BenchSaga>, commandsTo queue: String) {
        saga.startedBy(BenchRequested.self, correlatedBy: \.requestId) { request, context in
            try context.send(BenchCommand(requestId: request.requestId, amount: request.amount), to: queue)
            try context.requestTimeout(after: .seconds(3600), BenchTimeout())
            return BenchSaga(requestId: request.requestId, amount: request.amount)
        }
        saga.handlesTimeout(BenchTimeout.self) { _, _, _ in }
    }
}
