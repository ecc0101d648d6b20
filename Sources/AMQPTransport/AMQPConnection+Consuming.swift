import CRabbitMQ
import Foundation

// Consuming: one channel per consumer (with its own prefetch), acknowledgements, and the consumer
// records that recovery uses to consume again.
extension AMQPConnection {
    /// Starts a consumer with manual acknowledgements on its own channel. `prefetch` bounds the
    /// unacknowledged deliveries in flight (0: unbounded).
    public func consume(queue: String, prefetch: UInt16 = 100, consumerTag: String? = nil, exclusive: Bool = false,
                        arguments: FieldTable = [:]) throws -> AMQPConsumer {
        try checkLimits("basic.consume", ["queue name": queue, "consumer tag": consumerTag ?? ""], arguments)
        let channel = try freeConsumerChannel(for: queue)
        // A consumer tag is a short string (at most 255 bytes): long names are cut.
        let tag = consumerTag ?? ProtocolLimits.truncated(configuration.connectionName ?? "consumer", bytes: 100) + "-"
            + ProtocolLimits.truncated(queue, bytes: 120) + "-\(channel)-\(UInt32.random(in: 0...UInt32.max))"
        let buffer = DeliveryBuffer { [weak self] unseen in
            // The reader left early (loop left, task cancelled): stop the consumer and hand back what it
            // never took.
            guard let self else { return }
            Task { await self.abandonConsumer(channel: channel, tag: tag, unseen: unseen) }
        }
        consumers[channel] = ConsumerRecord(queue: queue, tag: tag, prefetch: prefetch, exclusive: exclusive,
                                            arguments: arguments, buffer: buffer)
        do {
            try startConsumerNow(channel: channel)
        } catch {
            consumers.removeValue(forKey: channel)
            buffer.finish(throwing: error)
            throw error
        }
        return AMQPConsumer(queue: queue, consumerTag: tag, deliveries: AMQPDeliveries(buffer: buffer),
                            connection: self, channel: channel)
    }

    /// Consumes on a fresh channel (a new consumer, after recovery, after the broker closed the old one):
    /// its delivery tags start over.
    func startConsumerNow(channel: UInt16) throws {
        guard let consumer = consumers[channel] else { return }
        consumers[channel]?.unsettled = UnsettledDeliveries()
        try onChannel(channel, "basic.consume \(consumer.queue)") { s in
            try s.qos(channel, prefetch: consumer.prefetch)
            let arena = CArena()
            _ = amqp_basic_consume(s.state, channel, arena.bytes(consumer.queue), arena.bytes(consumer.tag), 0, 0,
                                   consumer.exclusive ? 1 : 0, arena.table(consumer.arguments))
            try s.check(channel: channel, operation: "basic.consume \(consumer.queue)")
        }
    }

    /// basic.cancel. The channel stays open for the deliveries the consumer handed out (the reader may
    /// still settle them) and is closed once they are all settled, which may be at once. With `tag`, only
    /// if the channel's consumer is still that one: once a consumer ended (the broker cancelled it), its
    /// channel number goes to the next consumer, which a late cancel of the old one must not stop.
    func cancelConsumer(channel: UInt16, tag: String? = nil) throws {
        guard let current = consumers[channel], tag == nil || current.tag == tag else { return }
        guard let consumer = consumers.removeValue(forKey: channel) else { return }
        defer { consumer.buffer.finish() }
        guard openChannels[channel] != nil else { return }
        // Recorded first: if basic.cancel fails, `onChannel` forgets it with the channel.
        cancelledChannels[channel] = consumer.unsettled
        do {
            try onChannel(channel, "basic.cancel \(consumer.tag)") { s in
                let arena = CArena()
                _ = amqp_basic_cancel(s.state, channel, arena.bytes(consumer.tag))
                try s.check(channel: channel, operation: "basic.cancel \(consumer.tag)")
            }
        } catch let error as AMQPError where error.code == .channelClosed {
            // The channel closed first, usually by the broker (consumer_timeout, a refused acknowledgement):
            // the consumer ended with it and its unacknowledged deliveries went back to the queue, which is
            // what the cancel was for.
            logger.debug("AMQP consumer's channel closed before its cancel", metadata: [
                "amqp.channel": "\(channel)", "amqp.queue": "\(consumer.queue)", "error": "\(error)",
            ])
            return
        }
        closeChannelIfSettled(channel)
    }

    /// The reader of a consumer's deliveries left early: cancel the consumer and requeue the deliveries
    /// it never took (those it took stay acknowledgeable). Deliveries still in flight are requeued by the
    /// pump as they arrive.
    func abandonConsumer(channel: UInt16, tag: String, unseen: [AMQPDelivery]) {
        if consumers[channel]?.tag == tag {
            logger.debug("AMQP consumer abandoned by its reader; cancelling it", metadata: ["amqp.channel": "\(channel)"])
            try? cancelConsumer(channel: channel, tag: tag)
        }
        // Checked for each: the channel closes as soon as the last of them is handed back.
        for delivery in unseen where openChannels[channel] == delivery.tag.channelEpoch {
            requeueUnwanted(channel: channel, deliveryTag: delivery.tag.value)
        }
    }

    /// Whether `tag` can still be settled: the connection is open and its channel is the opening the delivery
    /// came on. False once the broker closed that channel or the connection was lost (recovered or not): the
    /// broker has requeued the delivery, or will as soon as it sees the connection gone, and delivers it again.
    public func canSettle(_ tag: DeliveryTag) -> Bool {
        guard let session, session.isOpen else { return false }
        return openChannels[tag.channel] == tag.channelEpoch
    }

    /// Acknowledges a delivery (and, with `multiple`, all earlier ones on its channel).
    public func ack(_ tag: DeliveryTag, multiple: Bool = false) throws {
        try acknowledge(tag, multiple: multiple, "basic.ack") { s in
            amqp_basic_ack(s.state, tag.channel, tag.value, multiple ? 1 : 0)
        }
    }

    /// Acknowledges one delivery and returns once the broker has taken the acknowledgement. `ack` only
    /// writes it: if the connection goes before the broker reads it, the message goes back to its queue
    /// although the ack returned. Here a synchronous method follows on the same channel (basic.qos with
    /// the consumer's prefetch, which changes nothing), and the broker handles a channel's frames in
    /// order, so its reply means the ack was handled. Throws (`.staleDelivery`, `.connectionLost`, …)
    /// when that cannot be known; then the message may still be in its queue.
    public func ackConfirmed(_ tag: DeliveryTag) throws {
        try ack(tag)
        // No suspension since the ack: the channel is the one it went on unless the ack itself closed it.
        guard openChannels[tag.channel] == tag.channelEpoch else {
            // The last unsettled delivery of a cancelled consumer: its channel was closed, and close-ok,
            // like any reply, comes after the frames before it. Unless that close failed.
            if let closure = brokerClosedChannels[tag.channel], closure.epoch == tag.channelEpoch {
                throw AMQPError(.staleDelivery, replyCode: closure.error.replyCode,
                                message: "the broker closed the channel of delivery \(tag.value) (\(closure.error.message)); "
                                    + "its acknowledgement may not have been handled", operation: "basic.ack")
            }
            guard let session, session.isOpen else {
                throw AMQPError(.connectionLost, message: "the connection was lost right after the acknowledgement of "
                                    + "delivery \(tag.value); it may not have been handled", operation: "basic.ack")
            }
            return
        }
        let prefetch = consumers[tag.channel]?.prefetch ?? 0
        do {
            try onChannel(tag.channel, "basic.ack \(tag.value) (confirming)") { s in try s.qos(tag.channel, prefetch: prefetch) }
        } catch let error as AMQPError where error.code == .channelClosed {
            if openChannels[tag.channel] != tag.channelEpoch, brokerClosedChannels[tag.channel]?.epoch != tag.channelEpoch,
               let session, session.isOpen {
                // This client closed the channel while handling frames read ahead (the last delivery of a
                // cancelled consumer handed back, a consumer the broker cancelled): its close-ok, like any
                // reply, came after the acknowledgement, as at the guard above.
                return
            }
            // The broker closed the channel (its close was the reply, or read ahead): as whenever it closes
            // a consumer's channel, the consumer goes on on a fresh one (a close read ahead has seen to it).
            if openChannels[tag.channel] == nil, consumers[tag.channel] != nil {
                logger.warning("AMQP channel closed by the broker", metadata: ["amqp.channel": "\(tag.channel)", "error": "\(error)"])
                restartConsumer(on: tag.channel)
            }
            throw error
        }
    }

    /// Negatively acknowledges: back to the queue with `requeue`, else dead-lettered or dropped.
    public func nack(_ tag: DeliveryTag, multiple: Bool = false, requeue: Bool) throws {
        try acknowledge(tag, multiple: multiple, "basic.nack") { s in
            amqp_basic_nack(s.state, tag.channel, tag.value, multiple ? 1 : 0, requeue ? 1 : 0)
        }
    }

    /// Rejects one delivery: back to the queue with `requeue`, else dead-lettered or dropped.
    public func reject(_ tag: DeliveryTag, requeue: Bool) throws {
        try acknowledge(tag, multiple: false, "basic.reject") { s in
            amqp_basic_reject(s.state, tag.channel, tag.value, requeue ? 1 : 0)
        }
    }

    private func acknowledge(_ tag: DeliveryTag, multiple: Bool, _ operation: String,
                             _ send: (AMQPSession) -> Int32) throws {
        guard let session, session.isOpen, openChannels[tag.channel] == tag.channelEpoch else {
            // The broker's reason (its reply code too) when it closed that channel itself, e.g. a
            // consumer_timeout: the caller can tell the operator what to change, not only that it failed.
            if let closure = brokerClosedChannels[tag.channel], closure.epoch == tag.channelEpoch {
                throw AMQPError(.staleDelivery, replyCode: closure.error.replyCode,
                                message: "delivery \(tag.value) came on a channel the broker closed (\(closure.error.message)); "
                                    + "the broker redelivers it", operation: operation)
            }
            throw AMQPError(.staleDelivery, message: "delivery \(tag.value) came on an earlier connection or channel; the broker redelivers it",
                            operation: operation)
        }
        let rc = send(session)
        if rc != AMQP_STATUS_OK.rawValue {
            let error = AMQPError(.connectionLost, message: AMQPSession.statusText(rc), operation: operation, libraryStatus: rc)
            connectionLost(error)
            throw error
        }
        settled(channel: tag.channel, tag: tag.value, multiple: multiple)
    }
}
