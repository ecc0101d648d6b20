// A SagaEndpoint run in this process (as `saga-endpoint run` / `bank` would run it), with a temporary
// database, started and stopped around a measurement.
import AMQPTransport
import Foundation
import Logging
import SagaEndpoint
import Sagas

struct RunningEndpoint {
    let endpoint: SagaEndpoint
    let task: Task<Void, any Error>

    /// The configuration the bench uses: the context's batching, and the endpoint's defaults otherwise.
    static func configuration(_ context: BenchmarkContext, queues: [String], databasePath: String,
                              name: String) -> EndpointConfiguration {
        var configuration = EndpointConfiguration(amqpURL: EndpointLoop.url(context.configuration), inputQueues: queues,
                                                  databasePath: databasePath)
        configuration.batchSize = context.batchSize
        configuration.prefetch = context.prefetch
        configuration.durableCommits = context.durableCommits
        configuration.connectionName = name
        return configuration
    }

    /// Starts the endpoint and returns once it is connected (its consumers are about to start).
    /// `tally`, when given, receives the endpoint's batch sizes.
    static func start(_ configuration: EndpointConfiguration, registry: HandlerRegistry,
                      tally: BatchTally? = nil) async throws -> RunningEndpoint {
        let logger = Logger.quiet(configuration.connectionName)
        let endpoint = SagaEndpoint(configuration: configuration, registry: registry, logger: logger,
                                    metricsFactory: tally)
        let task = Task { try await endpoint.run() }
        let deadline = ContinuousClock.now + .seconds(60)
        while !endpoint.isReady {
            if ContinuousClock.now > deadline {
                task.cancel()
                _ = await task.result
                throw BenchmarkError("\(configuration.connectionName) did not connect within 60 s")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
        return RunningEndpoint(endpoint: endpoint, task: task)
    }

    /// Stops the endpoint (cancellation: it stops consuming and closes its connections and database).
    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// A temporary folder for the databases of one run, removed with `remove()`.
struct ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("saga-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ file: String) -> String { url.appendingPathComponent(file).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}
