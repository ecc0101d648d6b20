/// Identifies a delivery for ack, nack and reject: the channel it came on, which incarnation of that
/// channel, and the broker's tag. Tags are only meaningful on the channel incarnation that received
/// them; after a reconnect the broker redelivers instead.
public struct DeliveryTag: Sendable, Hashable {
    public let channel: UInt16
    public let channelEpoch: UInt64
    public let value: UInt64
}

/// A message received from a queue, with every basic property, not yet acknowledged.
public struct AMQPDelivery: Sendable {
    public let message: AMQPMessage
    public let tag: DeliveryTag
    public let consumerTag: String
    public let queue: String
    public let exchange: String
    public let routingKey: String
    /// The broker delivered this message before (to this or another consumer) without an ack.
    public let redelivered: Bool

    public var properties: BasicProperties { message.properties }
}

/// A consumer on a queue: its deliveries arrive on `deliveries` until it is cancelled. The stream
/// survives connection recovery (the consumer is re-registered) and ends with an error when the broker
/// cancels the consumer (its queue was deleted) or the connection is closed.
///
/// Iterate `deliveries` from one task. Leaving the iteration early (`break`, a thrown error, the task
/// cancelled) cancels the consumer, and the deliveries it had not taken yet return to the queue; the ones
/// taken can still be acknowledged (see `AMQPDeliveries`).
public struct AMQPConsumer: Sendable {
    public let queue: String
    public let consumerTag: String
    public let deliveries: AMQPDeliveries
    let connection: AMQPConnection
    let channel: UInt16

    /// basic.cancel; deliveries already received can still be acknowledged.
    public func cancel() async throws {
        try await connection.cancelConsumer(channel: channel)
    }
}
