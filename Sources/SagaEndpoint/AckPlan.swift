import AMQPTransport

/// The acknowledgements that settle a batch's deliveries.
///
/// Delivery tags count per channel *and* per opening of it: after the broker closed a channel or the
/// connection was recovered, tags start again at 1 under a new `channelEpoch`, and a tag of an earlier
/// epoch can no longer be acknowledged (its delivery comes back redelivered). A batch can hold
/// deliveries from both sides of such a reopening (the older ones were waiting in the work queue), so
/// acks are grouped by channel and epoch: a `multiple` ack of an old tag would fail and acknowledge none
/// of the new ones, which would then hold prefetch slots until the connection dropped again.
enum AckPlan {
    struct Ack: Equatable {
        var tag: DeliveryTag
        var multiple: Bool
    }

    /// Per channel and epoch, one `multiple` ack of the highest tag when `multipleAcks` allows it (every
    /// earlier delivery of that channel is settled) and none of that channel's deliveries is in `requeued`
    /// (handed back, or held to be processed again: `HeldDeliveries`); otherwise one ack per tag, in the
    /// order given.
    static func acks(_ tags: [DeliveryTag], requeued: [DeliveryTag], multipleAcks: Bool) -> [Ack] {
        struct Opening: Hashable {
            var channel: UInt16
            var epoch: UInt64
        }
        func opening(_ tag: DeliveryTag) -> Opening { Opening(channel: tag.channel, epoch: tag.channelEpoch) }
        let requeuedOpenings = Set(requeued.map(opening))
        var order: [Opening] = []
        var groups: [Opening: [DeliveryTag]] = [:]
        for tag in tags {
            let key = opening(tag)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(tag)
        }
        return order.flatMap { key -> [Ack] in
            let group = groups[key]!
            if multipleAcks, !requeuedOpenings.contains(key), let last = group.max(by: { $0.value < $1.value }) {
                return [Ack(tag: last, multiple: true)]
            }
            return group.map { Ack(tag: $0, multiple: false) }
        }
    }
}
