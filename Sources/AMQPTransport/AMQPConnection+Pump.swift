import CRabbitMQ
import Foundation

// The pump: between callers' requests, the connection's thread reads frames (deliveries, confirms,
// returns, cancels, channel and connection closes) and keeps heartbeats going.
extension AMQPConnection {
    /// Reads frames whenever no caller's request is waiting, and keeps heartbeats going (one every half
    /// interval, see `AMQPSession.sendHeartbeatIfDue`).
    ///
    /// Requests (publish, ack, declare, …) are jobs on the same thread, so the pump steps aside
    /// (`yieldToQueuedJobs`) whenever one is waiting, but not otherwise: while frames keep coming and nobody
    /// waits, it reads on without the cost of a yield.
    func pump() async {
        let burst = 256
        while !closedByClient, !Task.isCancelled {
            guard let session else {
                if recovery.isEnabled { await recover() } else { return }
                continue
            }
            var handled = 0
            reading: while handled < burst {
                switch session.readFrame() {
                case .frame(let frame):
                    handled += 1
                    handle(frame, session: session)
                    if self.session !== session { break reading }
                case .none:
                    break reading
                case .failed(let error):
                    connectionLost(error)
                    break reading
                }
            }
            if !channelsToClose.isEmpty, self.session === session, !session.hasQueuedFrames { closeSettledChannels() }
            guard let current = self.session, current === session else { continue }
            if let error = session.sendHeartbeatIfDue(now: .now) {
                connectionLost(error)
                continue
            }
            session.releaseBuffers()
            if handled < burst && !session.hasBufferedFrames {
                // Nothing left to decode. Right after a burst, just look whether more has arrived; when
                // idle, sleep until the socket has data, a request arrives or a heartbeat is due. Either way
                // a true answer means data is there and no request was waiting: read on.
                var idle = session.heartbeat > 0 ? min(1000, session.heartbeat * 250) : 1000
                if let due = session.nextHeartbeat {
                    // Wake when the next heartbeat of ours is due, so that it goes out on time.
                    let untilDue = ((due - .now) / .milliseconds(1)).rounded(.up)
                    idle = Int(max(0, min(Double(idle), untilDue)))
                }
                if executor.waitForReadable(session.socketFD, timeoutMilliseconds: Int32(handled > 0 ? 0 : idle)) {
                    continue
                }
            }
            await executor.yieldToQueuedJobs()
        }
    }

    /// Handles, as the pump would, the frames rabbitmq-c read ahead and queued while a synchronous method
    /// waited for its reply. Called before each synchronous method: rabbitmq-c waits for the reply on the
    /// socket only, and a channel.close of the method's channel left in that queue would have it wait for a
    /// reply the broker never sends (a closing channel ignores all but close-ok) until the RPC timeout
    /// dropped the connection. Not while `establish` restores a new connection: it reports failures by
    /// throwing, and the pump handles what was read ahead once it is through. Nor inside itself: a close
    /// handled here starts its consumer again (`restartConsumer`, whose methods come here), and handling
    /// the next close there, and so on, nested one restart per close: a broker closing hundreds of
    /// consumer channels at once (consumer_timeout) overflowed the connection thread's stack. The
    /// outer loop handles the rest once that restart is through; the restart's own channel is a fresh
    /// one, for which nothing can be queued yet.
    func handleReadAhead() {
        guard !connecting, !handlingReadAhead, let session, session.isOpen else { return }
        handlingReadAhead = true
        defer { handlingReadAhead = false }
        while session.hasQueuedFrames, self.session === session {
            // With frames queued this takes the first of them; it reads nothing from the socket.
            guard case .frame(let frame) = session.readFrame() else { return }
            handle(frame, session: session)
        }
    }

    private func handle(_ frame: amqp_frame_t, session: AMQPSession) {
        let channel = frame.channel
        switch frame.frame_type {
        case CSAGA_FRAME_METHOD:
            handleMethod(frame, channel: channel, session: session)
        case CSAGA_FRAME_HEADER:
            guard var assembly = assemblies.removeValue(forKey: channel) else { return }
            if let decoded = frame.payload.properties.decoded {
                assembly.properties = CDecode.properties(decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee)
            }
            assembly.bodySize = Int(frame.payload.properties.body_size)
            if assembly.bodySize == 0 { complete(assembly, channel: channel) } else { assemblies[channel] = assembly }
        case CSAGA_FRAME_BODY:
            guard var assembly = assemblies.removeValue(forKey: channel) else { return }
            let fragment = frame.payload.body_fragment
            if fragment.len > 0, let base = fragment.bytes {
                if assembly.body.isEmpty {
                    // Usually the whole body comes in one frame: one allocation, one copy.
                    assembly.body = Data(bytes: base, count: fragment.len)
                    if fragment.len < assembly.bodySize { assembly.body.reserveCapacity(assembly.bodySize) }
                } else {
                    assembly.body.append(base.assumingMemoryBound(to: UInt8.self), count: fragment.len)
                }
            }
            if assembly.body.count >= assembly.bodySize { complete(assembly, channel: channel) } else { assemblies[channel] = assembly }
        default:
            break
        }
    }

    private func handleMethod(_ frame: amqp_frame_t, channel: UInt16, session: AMQPSession) {
        let id = frame.payload.method.id
        let decoded = frame.payload.method.decoded
        switch id {
        case CSAGA_BASIC_DELIVER_METHOD:
            guard let d = decoded?.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee else { return }
            // The consumer tag is the one this client chose; exchange and routing key repeat from one
            // delivery to the next, so their strings are reused.
            assemblies[channel] = ContentAssembly(kind: .delivery(
                consumerTag: consumers[channel]?.tag ?? CDecode.string(d.consumer_tag), deliveryTag: d.delivery_tag,
                redelivered: d.redelivered != 0, exchange: recentStrings.string(d.exchange),
                routingKey: recentStrings.string(d.routing_key)
            ))
        case CSAGA_BASIC_RETURN_METHOD:
            guard let r = decoded?.assumingMemoryBound(to: amqp_basic_return_t.self).pointee else { return }
            assemblies[channel] = ContentAssembly(kind: .returned(
                replyCode: r.reply_code, replyText: CDecode.string(r.reply_text),
                exchange: CDecode.string(r.exchange), routingKey: CDecode.string(r.routing_key)
            ))
        case CSAGA_BASIC_ACK_METHOD:
            guard channel == Self.publishChannel,
                  let ack = decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee else { return }
            confirms.acknowledged(ack.delivery_tag, multiple: ack.multiple != 0)
        case CSAGA_BASIC_NACK_METHOD:
            guard channel == Self.publishChannel,
                  let nack = decoded?.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee else { return }
            confirms.negativelyAcknowledged(nack.delivery_tag, multiple: nack.multiple != 0)
        case CSAGA_BASIC_CANCEL_METHOD:
            // The broker cancelled a consumer (its queue was deleted, or a quorum queue lost its leader).
            if let consumer = consumers.removeValue(forKey: channel) {
                logger.warning("AMQP consumer cancelled by the broker", metadata: [
                    "amqp.queue": "\(consumer.queue)", "amqp.consumer_tag": "\(consumer.tag)",
                ])
                consumer.buffer.finish(throwing: AMQPError(
                    .consumerCancelled, message: "the broker cancelled the consumer of queue '\(consumer.queue)'",
                    operation: "consume \(consumer.queue)"))
                closeConsumerChannel(channel)
            }
        case CSAGA_CHANNEL_CLOSE_METHOD:
            let close = decoded?.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(.channelClosed, replyCode: close?.reply_code,
                                  message: close.map { CDecode.string($0.reply_text) } ?? "channel closed",
                                  operation: "channel \(channel)")
            session.sendChannelCloseOk(channel)
            channelClosedByBroker(channel, error: error)
        case CSAGA_CONNECTION_CLOSE_METHOD:
            let close = decoded?.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError(.connectionClosed, replyCode: close?.reply_code,
                                  message: close.map { CDecode.string($0.reply_text) } ?? "connection closed")
            session.sendConnectionCloseOk()
            connectionLost(error)
        case CSAGA_CONNECTION_BLOCKED_METHOD:
            let blocked = decoded?.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            let reason = blocked.map { CDecode.string($0.reason) } ?? ""
            blockedReason = reason.isEmpty ? "resource alarm" : reason
            logger.warning("AMQP connection blocked by the broker (resource alarm); publishes will wait",
                           metadata: ["reason": "\(blockedReason ?? "")"])
        case CSAGA_CONNECTION_UNBLOCKED_METHOD:
            blockedReason = nil
            logger.info("AMQP connection unblocked")
        default:
            break
        }
    }

    private func complete(_ assembly: ContentAssembly, channel: UInt16) {
        let message = AMQPMessage(body: assembly.body, properties: assembly.properties)
        switch assembly.kind {
        case .delivery(let consumerTag, let deliveryTag, let redelivered, let exchange, let routingKey):
            guard let epoch = openChannels[channel] else { return }
            guard let consumer = consumers[channel] else {
                // In flight when the client cancelled the consumer: nobody will see it, so hand it back
                // now instead of leaving it unacknowledged until the connection closes.
                requeueUnwanted(channel: channel, deliveryTag: deliveryTag)
                return
            }
            let taken = consumer.buffer.yield(AMQPDelivery(
                message: message, tag: DeliveryTag(channel: channel, channelEpoch: epoch, value: deliveryTag),
                consumerTag: consumerTag, queue: consumer.queue, exchange: exchange, routingKey: routingKey,
                redelivered: redelivered))
            if taken {
                consumers[channel]?.unsettled.handOut(deliveryTag)
            } else {
                // Nobody iterates the deliveries any more: requeue this one and stop the consumer.
                requeueUnwanted(channel: channel, deliveryTag: deliveryTag)
                try? cancelConsumer(channel: channel)
            }
        case .returned(let code, let text, let exchange, let routingKey):
            confirms.returned(exchange: exchange, routingKey: routingKey, message: message,
                              code: code, text: text)
        }
    }

    /// The broker closed `channel`: its publishes fail, its consumer starts again on it. (Internal, not
    /// private, so tests can inject a close.)
    func channelClosedByBroker(_ channel: UInt16, error: AMQPError) {
        if let epoch = openChannels[channel], channel != Self.publishChannel {
            brokerClosedChannels[channel] = (epoch, error)
        }
        openChannels.removeValue(forKey: channel)
        assemblies.removeValue(forKey: channel)
        cancelledChannels.removeValue(forKey: channel)
        channelsToClose.remove(channel)
        logger.warning("AMQP channel closed by the broker", metadata: ["amqp.channel": "\(channel)", "error": "\(error)"])
        if channel == Self.publishChannel {
            confirms.failAll(error)
        } else {
            restartConsumer(on: channel)
        }
    }

    /// The consumer of a channel the broker closed (if it has one): its unacknowledged deliveries went back
    /// to the queue; it consumes again on a fresh channel.
    func restartConsumer(on channel: UInt16) {
        guard consumers[channel] != nil else { return }
        do {
            try startConsumerNow(channel: channel)
        } catch let failure as AMQPError where failure.code == .channelClosed {
            // The queue is gone or refuses this consumer: as in recovery, the consumer ends.
            if let consumer = consumers.removeValue(forKey: channel) {
                consumer.buffer.finish(throwing: failure)
            }
        } catch {
            // A connection failure: `onChannel` has handed the connection to recovery, which keeps its
            // consumers and starts this one again (or ends them all when recovery is disabled).
            // Ending it here would leave the queue unconsumed on a connection that looks healthy. Any
            // other failure (an unexpected reply) drops the connection too, as a failed `establish`
            // would, rather than leave the consumer without a channel; a no-op when already lost.
            let failure = error as? AMQPError ?? AMQPError(.library, message: "\(error)")
            logger.warning("AMQP consumer restart failed; recovery will restart it", metadata: [
                "amqp.channel": "\(channel)", "error": "\(failure)",
            ])
            connectionLost(failure)
        }
    }

    /// basic.reject with requeue for a delivery no reader will see (or settle).
    func requeueUnwanted(channel: UInt16, deliveryTag: UInt64) {
        guard let session, session.isOpen else { return }
        let rc = amqp_basic_reject(session.state, channel, deliveryTag, 1)
        if rc != AMQP_STATUS_OK.rawValue {
            connectionLost(AMQPError(.connectionLost, message: AMQPSession.statusText(rc), operation: "basic.reject",
                                     libraryStatus: rc))
            return
        }
        settled(channel: channel, tag: deliveryTag, multiple: false)
    }
}
