// The load of the latency runs: a paced producer of TransferRequested and a consumer of `bank` that takes
// the time each command arrives, both on one rabbitmq-c connection on one thread of their own.
//
// Why not AMQPTransport and tasks: the client runs in the process and on the two cores the endpoint runs
// on. Written with tasks (a wake-up, a publish and a confirm per message, one ack per read), it and the
// broker's side of it took about 1.9 of the machine's 2 cores at half of case (b)'s rate even without
// the endpoint, and the client's tasks waited for Swift's cooperative pool behind the endpoint's work,
// so the run measured a saturated machine and a queue in front of the probe. Here the client is one
// thread that the kernel schedules like any other process's: it sends what is due at most once per tick,
// in one burst, and consumes without acknowledgements.
import AMQPTransport
import CRabbitMQ
import Foundation
import MoneyTransfer
import Sagas

/// What a paced run saw: each command's arrival and latency (milliseconds from its slot in the schedule).
struct PacedArrivals: Sendable {
    var start: ContinuousClock.Instant
    var arrivals: [(at: ContinuousClock.Instant, milliseconds: Double)]
    var sent: Int
    /// CPU time the client's thread used for the run (the load itself costs the machine this much).
    var clientCPU: Duration
}

struct PacedClient: Sendable {
    /// The producer sends what is due at most once per tick. A message sent up to a tick after its slot
    /// counts that delay as latency: its slot, not its sending, is the origin (no coordinated omission).
    static let tick: Duration = .milliseconds(1)
    /// How long the consumer waits for the last commands after the schedule ended.
    static let drainLimit: Duration = .seconds(60)

    let configuration: AMQPConfiguration
    let requests: [TransferRequested]
    let rate: Double

    /// Connects, consumes `bank`, then sends `requests` to `transfers` at `rate` per second from 200 ms
    /// after the consumer is in place, until every command arrived or `drainLimit` passed after the last
    /// send. Blocks its thread: run it with `onThread`.
    func run() throws -> PacedArrivals {
        let connection = try PacedConnection(configuration)
        return try connection.run(requests, rate: rate)
    }
}

/// One rabbitmq-c connection, used from one thread: channel 1 consumes `bank` without acknowledgements,
/// channel 2 publishes to `transfers` in confirm mode.
private final class PacedConnection {
    let session: RawSession
    var state: amqp_connection_state_t { session.state }
    /// The correlation id of the delivery whose header frame was read last, until its body is complete.
    private var partial: (correlationId: String?, remaining: Int)?
    private var confirmed: UInt64 = 0

    init(_ c: AMQPConfiguration) throws {
        session = try RawSession(c, role: "the paced client")
    }

    func run(_ requests: [TransferRequested], rate: Double) throws -> PacedArrivals {
        let count = requests.count
        // The DebitAccount's correlation id is the transfer id: it finds the command's slot in the schedule.
        let slots = Dictionary(uniqueKeysWithValues: requests.enumerated().map { ($1.transferId, $0) })
        let bodies = try requests.map { Array(try MessageCoding.encode($0)) }
        let ids = requests.map { Array($0.transferId.utf8) }
        let queue = strdup(TransferTopology.bank)!, target = strdup(TransferTopology.transfers)!
        let tag = strdup("saga-bench-paced")!, contentType = strdup(MessageCoding.contentType)!
        let type = strdup(TransferRequested.messageType)!
        defer { free(queue); free(target); free(tag); free(contentType); free(type) }

        _ = amqp_basic_consume(state, RawSession.consumeChannel, amqp_bytes_t(len: strlen(queue), bytes: queue),
                               amqp_bytes_t(len: strlen(tag), bytes: tag), 0, 1, 0, amqp_empty_table)
        try session.check(amqp_get_rpc_reply(state), "basic.consume")

        let cpuAtStart = Self.threadCPU()
        let interval = 1 / rate
        let start = ContinuousClock.now + .milliseconds(200)
        func due(_ slot: Int) -> ContinuousClock.Instant { start + .seconds(Double(slot) * interval) }
        var arrivals: [(at: ContinuousClock.Instant, milliseconds: Double)] = []
        arrivals.reserveCapacity(count)
        var next = 0
        var lastSend = start
        while arrivals.count < count {
            let now = ContinuousClock.now
            if next < count, now >= due(next) {
                let dueCount = min(count, Int(Stats.seconds(now - start) / interval) + 1)
                for slot in next..<dueCount {
                    try publish(body: bodies[slot], id: ids[slot], to: target, contentType: contentType, type: type)
                }
                next = dueCount
                lastSend = now
            }
            if next == count, ContinuousClock.now - lastSend > PacedClient.drainLimit { break }
            // Read what arrives until the next send is due (a tick from now at the earliest).
            let wake = next < count ? max(due(next), ContinuousClock.now + PacedClient.tick) : ContinuousClock.now + .milliseconds(50)
            try readFrames(until: wake) { correlationId in
                guard let correlationId, let slot = slots[correlationId] else { return }
                let arrived = ContinuousClock.now
                arrivals.append((arrived, Stats.seconds(arrived - due(slot)) * 1000))
            }
        }
        // Every request the broker took was confirmed (the consumer counted the commands; this checks the
        // producer's side, so a lost request shows as an error, not as a missing arrival).
        let confirmLimit = ContinuousClock.now + .seconds(10)
        while confirmed < UInt64(next), ContinuousClock.now < confirmLimit {
            try readFrames(until: ContinuousClock.now + .milliseconds(50)) { _ in }
        }
        guard confirmed >= UInt64(next) else {
            throw BenchmarkError("the broker confirmed \(confirmed) of \(next) paced TransferRequested")
        }
        _ = amqp_basic_cancel(state, RawSession.consumeChannel, amqp_bytes_t(len: strlen(tag), bytes: tag))
        return PacedArrivals(start: start, arrivals: arrivals, sent: next, clientCPU: Self.threadCPU() - cpuAtStart)
    }

    /// The CPU time the calling thread has used.
    private static func threadCPU() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }

    private func publish(body: [UInt8], id: [UInt8], to queue: UnsafeMutablePointer<CChar>,
                         contentType: UnsafeMutablePointer<CChar>, type: UnsafeMutablePointer<CChar>) throws {
        var properties = amqp_basic_properties_t()
        properties._flags = CSAGA_BASIC_CONTENT_TYPE_FLAG | CSAGA_BASIC_DELIVERY_MODE_FLAG
            | CSAGA_BASIC_MESSAGE_ID_FLAG | CSAGA_BASIC_TYPE_FLAG
        properties.content_type = amqp_bytes_t(len: strlen(contentType), bytes: contentType)
        properties.delivery_mode = 1
        properties.type = amqp_bytes_t(len: strlen(type), bytes: type)
        try body.withUnsafeBytes { body in
            try id.withUnsafeBytes { id in
                properties.message_id = amqp_bytes_t(len: id.count, bytes: UnsafeMutableRawPointer(mutating: id.baseAddress))
                let rc = amqp_basic_publish(state, RawSession.publishChannel, amqp_bytes_t(len: 0, bytes: nil),
                                            amqp_bytes_t(len: strlen(queue), bytes: queue), 1, 0, &properties,
                                            amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
                guard rc == AMQP_STATUS_OK.rawValue else { throw RawSession.failure("basic.publish", rc) }
            }
        }
    }

    /// Handles frames until `deadline`; `arrived` gets each complete delivery's correlation id.
    private func readFrames(until deadline: ContinuousClock.Instant, _ arrived: (String?) -> Void) throws {
        while true {
            // rabbitmq-c turns the timeout into a deadline and polls for the whole milliseconds left until it,
            // rounded down: a wait of 1 ms polled for 0 ms and returned at once, so the thread spun. One
            // millisecond more makes it wait; a delivery still ends the wait at once.
            let left = max(.zero, deadline - ContinuousClock.now)
            let millis = Int((Stats.seconds(left) * 1000).rounded(.up)) + 1
            var timeout = timeval(tv_sec: millis / 1000, tv_usec: (millis % 1000) * 1000)
            var frame = amqp_frame_t()
            let rc = amqp_simple_wait_frame_noblock(state, &frame, &timeout)
            if rc == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard rc == AMQP_STATUS_OK.rawValue else { throw RawSession.failure("reading frames", rc) }
            switch frame.frame_type {
            case CSAGA_FRAME_METHOD:
                try handleMethod(frame)
            case CSAGA_FRAME_HEADER:
                guard let decoded = frame.payload.properties.decoded else { break }
                let properties = decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee
                var correlationId: String?
                if properties._flags & CSAGA_BASIC_CORRELATION_ID_FLAG != 0, properties.correlation_id.len > 0,
                   let base = properties.correlation_id.bytes {
                    correlationId = String(decoding: UnsafeRawBufferPointer(start: base, count: properties.correlation_id.len),
                                           as: UTF8.self)
                }
                let size = Int(frame.payload.properties.body_size)
                if size == 0 { arrived(correlationId) } else { partial = (correlationId, size) }
            case CSAGA_FRAME_BODY:
                guard var delivery = partial else { break }
                delivery.remaining -= frame.payload.body_fragment.len
                if delivery.remaining <= 0 {
                    partial = nil
                    arrived(delivery.correlationId)
                } else {
                    partial = delivery
                }
            default:
                break
            }
            amqp_maybe_release_buffers(state)
            if ContinuousClock.now >= deadline, amqp_frames_enqueued(state) == 0, amqp_data_in_buffer(state) == 0 { return }
        }
    }

    private func handleMethod(_ frame: amqp_frame_t) throws {
        let decoded = frame.payload.method.decoded
        switch frame.payload.method.id {
        case CSAGA_BASIC_ACK_METHOD:
            guard let ack = decoded?.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee else { return }
            confirmed = max(confirmed, ack.delivery_tag)
        case CSAGA_BASIC_NACK_METHOD:
            throw BenchmarkError("the broker nacked a paced TransferRequested")
        case CSAGA_BASIC_RETURN_METHOD:
            throw BenchmarkError("a paced TransferRequested was returned (queue \(TransferTopology.transfers) missing?)")
        case CSAGA_CHANNEL_CLOSE_METHOD, CSAGA_CONNECTION_CLOSE_METHOD:
            throw BenchmarkError("the broker closed channel \(frame.channel) of the paced client")
        default:
            break
        }
    }
}
