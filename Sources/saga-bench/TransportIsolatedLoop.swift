// The transport loop again, but isolated to the AMQPConnection actor: it runs on the connection's own
// thread between the pump's reads, like the raw loop does, so publish and ack need no thread switch.
// The difference to TransportLoop is the cost of hopping between Swift's cooperative pool and the
// connection's thread; the difference to RawCLoop is the transport's own work.
import AMQPTransport
import Logging

struct TransportIsolatedLoop: BenchmarkCase {
    let name = "AMQPTransport, isolated"

    func run(_ context: BenchmarkContext) async throws -> RunResult {
        let logger = Logger.quiet("saga-bench")
        var configuration = context.configuration
        configuration.connectionName = "saga-bench-transport-isolated"
        let connection = try await AMQPConnection.connect(configuration, logger: logger)
        do {
            let result = try await move(context, on: connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    private func move(_ context: BenchmarkContext, on connection: isolated AMQPConnection) async throws -> RunResult {
        let start = ContinuousClock.now
        let consumer = try connection.consume(queue: context.queueA, prefetch: context.prefetch)
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
            try connection.ack(last.tag, multiple: true)
            moved += batch.count
            batches += 1
        }
        let elapsed = ContinuousClock.now - start
        try await consumer.cancel()
        return RunResult(elapsed: elapsed, batches: batches)
    }
}
