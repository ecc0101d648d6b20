// The latency floor of case (b)'s message path without the endpoint: consume `transfers`, publish one
// message per delivery to `bank` with confirms, acknowledge the batch. The same hops, batching, prefetch
// and confirms as the endpoint, but no store, no handler and no JSON: what the broker, the client and this
// machine's scheduling cost a message at a given rate, measured beside case (b)'s latency in one run.
import AMQPTransport
import Logging

struct TransportForwarder {
    let connection: AMQPConnection
    let task: Task<Void, any Error>

    /// Starts forwarding `transfers` to `bank`; each message goes on with its message id as correlation
    /// id (the DebitAccount the endpoint sends carries the transfer id there, which the probe reads).
    static func start(_ context: BenchmarkContext) async throws -> TransportForwarder {
        var configuration = context.configuration
        configuration.connectionName = "saga-bench-forwarder"
        let connection = try await AMQPConnection.connect(configuration, logger: Logger.quiet("saga-bench-forwarder"))
        let consumer = try await connection.consume(queue: TransferTopology.transfers, prefetch: context.prefetch)
        let task = Task {
            var deliveries = consumer.deliveries.makeAsyncIterator()
            while !Task.isCancelled {
                let batch = try await deliveries.next(upTo: context.batchSize)
                guard let last = batch.last else { return }
                let requests = batch.map { delivery in
                    let id = delivery.message.properties.messageId ?? ""
                    return PublishRequest.toQueue(TransferTopology.bank, AMQPMessage(
                        body: delivery.message.body,
                        properties: BasicProperties(contentType: delivery.message.properties.contentType,
                                                    deliveryMode: .persistent, correlationId: id,
                                                    messageId: "forwarded-\(id)", type: "DebitAccount")))
                }
                guard await connection.publish(requests).allSatisfy(\.isConfirmed) else {
                    throw BenchmarkError("a forwarded message was not confirmed")
                }
                try await connection.ack(last.tag, multiple: true)
            }
        }
        return TransportForwarder(connection: connection, task: task)
    }

    /// Closing the connection ends the consumer's stream, so the loop ends wherever it waits.
    func stop() async {
        task.cancel()
        await connection.close()
        _ = await task.result
    }
}
