// The same loop as RawCLoop, through AMQPTransport: consume from A, publish the batch to B with confirms
// (`publish(_:)`), then acknowledge the batch with one `ack(_:multiple:)`.
import AMQPTransport
import Logging

struct TransportLoop: BenchmarkCase {
    let name = "AMQPTransport"

    func run(_ context: BenchmarkContext) async throws -> RunResult {
        let logger = Logger.quiet("saga-bench")
        var configuration = context.configuration
        configuration.connectionName = "saga-bench-transport"
        let connection = try await AMQPConnection.connect(configuration, logger: logger)
        do {
            let elapsed = try await move(context, connection)
            await connection.close()
            return elapsed
        } catch {
            await connection.close()
            throw error
        }
    }

    private func move(_ context: BenchmarkContext, _ connection: AMQPConnection) async throws -> RunResult {
        let start = ContinuousClock.now
        let consumer = try await connection.consume(queue: context.queueA, prefetch: context.prefetch)
        var deliveries = consumer.deliveries.makeAsyncIterator()
        var moved = 0
        var batches = 0
        while moved < context.messages {
            let batch = try await deliveries.next(upTo: min(context.batchSize, context.messages - moved))
            guard let last = batch.last else { throw BenchmarkError("the consumer ended after \(moved) messages") }
            let outcomes = await connection.publish(batch.map { .toQueue(context.queueB, $0.message) })
            if let failed = outcomes.first(where: { $0 != .confirmed }) {
                throw BenchmarkError("a publish to \(context.queueB) was not confirmed: \(failed)")
            }
            try await connection.ack(last.tag, multiple: true)
            moved += batch.count
            batches += 1
        }
        let elapsed = ContinuousClock.now - start
        try await consumer.cancel()
        return RunResult(elapsed: elapsed, batches: batches)
    }
}
