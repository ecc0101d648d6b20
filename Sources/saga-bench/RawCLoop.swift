// The physical baseline: the consume → publish with confirms → ack loop written directly against the
// rabbitmq-c C API on one blocking thread, reading the frames (deliveries, basic.ack confirms) itself.
// Channel 1 consumes from A, channel 2 publishes to B in confirm mode, as AMQPTransport does.
import AMQPTransport
import CRabbitMQ
import Foundation

struct RawCLoop: BenchmarkCase {
    let name = "raw rabbitmq-c"

    func run(_ context: BenchmarkContext) async throws -> RunResult {
        try await onThread {
            let connection = try RawConnection(context.configuration)
            return try connection.move(context)
        }
    }
}

/// A delivery copied out of the library's frame memory.
private struct RawDelivery {
    var tag: UInt64
    var messageId: [UInt8]?
    var deliveryMode: UInt8?
    var bodySize: Int
    var body: [UInt8]
}

/// One rabbitmq-c connection, used from one thread.
private final class RawConnection {
    let session: RawSession
    var state: amqp_connection_state_t { session.state }
    /// Complete deliveries not published yet, oldest first.
    private var ready: [RawDelivery] = []
    /// The delivery whose header and body frames are being read.
    private var partial: RawDelivery?
    /// The highest publish sequence number the broker has confirmed.
    private var confirmed: UInt64 = 0

    init(_ c: AMQPConfiguration) throws {
        session = try RawSession(c, role: "the raw loop")
    }

    func move(_ context: BenchmarkContext) throws -> RunResult {
        let queueA = strdup(context.queueA)!, queueB = strdup(context.queueB)!, tag = strdup("saga-bench-raw")!
        defer { free(queueA); free(queueB); free(tag) }
        let exchange = amqp_bytes_t(len: 0, bytes: nil)
        let routingKey = amqp_bytes_t(len: strlen(queueB), bytes: queueB)

        let start = ContinuousClock.now
        _ = amqp_basic_qos(state, RawSession.consumeChannel, 0, context.prefetch, 0)
        try session.check(amqp_get_rpc_reply(state), "basic.qos")
        _ = amqp_basic_consume(state, RawSession.consumeChannel, amqp_bytes_t(len: strlen(queueA), bytes: queueA),
                               amqp_bytes_t(len: strlen(tag), bytes: tag), 0, 0, 0, amqp_empty_table)
        try session.check(amqp_get_rpc_reply(state), "basic.consume")

        var published: UInt64 = 0
        var moved = 0
        var batches = 0
        while moved < context.messages {
            // Take what has arrived, up to a batch: wait for the first delivery only.
            let limit = min(context.batchSize, context.messages - moved)
            while ready.isEmpty { try readFrame(wait: true) }
            while ready.count < limit, try readFrame(wait: false) {}
            let batch = ready.prefix(limit)

            for delivery in batch {
                var properties = amqp_basic_properties_t()
                properties._flags = 0
                try delivery.body.withUnsafeBytes { body in
                    try (delivery.messageId ?? []).withUnsafeBytes { id in
                        if delivery.messageId != nil {
                            properties._flags |= CSAGA_BASIC_MESSAGE_ID_FLAG
                            properties.message_id = amqp_bytes_t(len: id.count, bytes: UnsafeMutableRawPointer(mutating: id.baseAddress))
                        }
                        if let mode = delivery.deliveryMode {
                            properties._flags |= CSAGA_BASIC_DELIVERY_MODE_FLAG
                            properties.delivery_mode = mode
                        }
                        let rc = amqp_basic_publish(state, RawSession.publishChannel, exchange, routingKey, 1, 0, &properties,
                                                    amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
                        guard rc == AMQP_STATUS_OK.rawValue else { throw RawSession.failure("basic.publish", rc) }
                    }
                }
            }
            published += UInt64(batch.count)
            // Wait for the broker to confirm the whole batch (deliveries arriving meanwhile are kept).
            while confirmed < published { try readFrame(wait: true) }
            let rc = amqp_basic_ack(state, RawSession.consumeChannel, batch.last!.tag, 1)
            guard rc == AMQP_STATUS_OK.rawValue else { throw RawSession.failure("basic.ack", rc) }
            ready.removeFirst(batch.count)
            moved += batch.count
            batches += 1
            amqp_maybe_release_buffers(state)
        }
        let elapsed = ContinuousClock.now - start
        _ = amqp_basic_cancel(state, RawSession.consumeChannel, amqp_bytes_t(len: strlen(tag), bytes: tag))
        return RunResult(elapsed: elapsed, batches: batches)
    }

    /// Reads and handles one frame; with `wait` false returns false at once when none is available.
    @discardableResult
    private func readFrame(wait: Bool) throws -> Bool {
        var frame = amqp_frame_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        let rc = wait ? amqp_simple_wait_frame(state, &frame) : amqp_simple_wait_frame_noblock(state, &frame, &zero)
        if !wait, rc == AMQP_STATUS_TIMEOUT.rawValue { return false }
        guard rc == AMQP_STATUS_OK.rawValue else { throw RawSession.failure("reading frames", rc) }
        switch frame.frame_type {
        case CSAGA_FRAME_METHOD:
            try handleMethod(frame)
        case CSAGA_FRAME_HEADER:
            guard var delivery = partial, let decoded = frame.payload.properties.decoded else { break }
            let properties = decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee
            if properties._flags & CSAGA_BASIC_MESSAGE_ID_FLAG != 0 { delivery.messageId = Self.bytes(properties.message_id) }
            if properties._flags & CSAGA_BASIC_DELIVERY_MODE_FLAG != 0 { delivery.deliveryMode = properties.delivery_mode }
            delivery.bodySize = Int(frame.payload.properties.body_size)
            delivery.body.reserveCapacity(delivery.bodySize)
            partial = delivery
            if delivery.bodySize == 0 { completeDelivery() }
        case CSAGA_FRAME_BODY:
            guard partial != nil else { break }
            let fragment = frame.payload.body_fragment
            if fragment.len > 0, let base = fragment.bytes {
                partial!.body.append(contentsOf: UnsafeRawBufferPointer(start: base, count: fragment.len))
            }
            if partial!.body.count >= partial!.bodySize { completeDelivery() }
        default:
            break
        }
        return true
    }

    private func handleMethod(_ frame: amqp_frame_t) throws {
        let decoded = frame.payload.method.decoded
        switch frame.payload.method.id {
        case CSAGA_BASIC_DELIVER_METHOD:
            guard let deliver = decoded?.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee else { return }
            partial = RawDelivery(tag: deliver.delivery_tag, messageId: nil, deliveryMode: nil, bodySize: 0, body: [])
        case CSAGA_BASIC_ACK_METHOD:
            guard let ack = decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee else { return }
            // Confirms come in order; `multiple` or not, everything up to the tag is confirmed once the
            // tag is, as no nack ever comes in this run.
            confirmed = max(confirmed, ack.delivery_tag)
        case CSAGA_BASIC_NACK_METHOD:
            throw BenchmarkError("the broker nacked a publish")
        case CSAGA_BASIC_RETURN_METHOD:
            throw BenchmarkError("a publish was returned (queue B missing?)")
        case CSAGA_CHANNEL_CLOSE_METHOD, CSAGA_CONNECTION_CLOSE_METHOD:
            throw BenchmarkError("the broker closed channel \(frame.channel)")
        default:
            break
        }
    }

    private func completeDelivery() {
        if let delivery = partial { ready.append(delivery) }
        partial = nil
    }

    private static func bytes(_ bytes: amqp_bytes_t) -> [UInt8] {
        guard bytes.len > 0, let base = bytes.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: bytes.len))
    }
}

/// Runs blocking work on a thread of its own, off Swift's cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
