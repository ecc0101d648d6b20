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
/// cancels the consumer (its queue was deleted; its channel is closed then, so the deliveries it held
/// return to the queue and acknowledging them throws `.staleDelivery`) or the connection is closed.
///
/// Iterate `deliveries` from one task. Leaving the iteration early (`break`, a thrown error, the task
/// cancelled) cancels the consumer, and the deliveries it had not taken yet return to the queue; the ones
/// taken can still be acknowledged (see `AMQPDeliveries`).
///
/// Each consumer has a channel of its own, one of the broker's channel_max per connection. After a cancel
/// the channel stays open until every delivery the consumer handed out is acknowledged, rejected or
/// nacked (those never read are handed back once the reader leaves, or the consumer is dropped unread);
/// then it is closed and its number reused. So settle what you hold after cancelling: a cancelled
/// consumer whose deliveries are never settled keeps its channel, and those deliveries stay
/// unacknowledged, until the connection closes or is lost.
public struct AMQPConsumer: Sendable {
    public let queue: String
    public let consumerTag: String
    public let deliveries: AMQPDeliveries
    let connection: AMQPConnection
    let channel: UInt16

    /// basic.cancel. The stream ends once the deliveries already received are read. Those can still be
    /// acknowledged, rejected or nacked, each once: when the last is settled the channel closes, and a
    /// further ack, nack or reject of them throws `.staleDelivery` (the broker has settled them). Cancelling
    /// a consumer that already ended is harmless, and so is cancelling one whose channel the broker has just
    /// closed (its consumer_timeout): that consumer has ended, the deliveries it held went back to the
    /// queue, and settling them throws `.staleDelivery` with the broker's reason. Throws when the
    /// connection is lost or closed.
    public func cancel() async throws {
        try await connection.cancelConsumer(channel: channel, tag: consumerTag)
    }
}
