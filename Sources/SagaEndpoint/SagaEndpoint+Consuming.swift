import AMQPTransport
import Foundation
import Logging
import Synchronization

// Moving each input queue's deliveries into the batch loop, and keeping the queue consumed: a consumer
// can end while the endpoint runs (the queue was deleted, the broker cancelled the consumer, its channel
// is above a channel_max lowered during a broker restart). The endpoint then reports itself not ready,
// with the queue and the reason, and consumes the queue again with a backoff until that works or the
// endpoint stops: the other queues go on meanwhile, and a queue declared again (`make topology`) is
// picked up without a restart.
extension SagaEndpoint {
    /// The first consumer of `queue`; nil when the broker refused it (the queue was deleted since it was
    /// declared, or reading it is not permitted): the endpoint then starts without it, not ready, and
    /// consumes it again like a queue lost later. Before, that one refusal failed the whole endpoint.
    /// A refused permission is said as `InputQueueAccessRefused` (the queue, vhost, user and permission).
    /// Other failures (the connection) still end the start.
    func consumeAtStart(_ queue: String, on connection: AMQPConnection) async throws -> AMQPConsumer? {
        do {
            return try await connection.consume(queue: queue, prefetch: configuration.prefetch,
                                                consumerTag: consumerTag(for: queue))
        } catch let error as AMQPError where error.code == .channelClosed {
            let reason = Self.consumeFailure(error, queue: queue, on: connection)
            health.consumerLost(queue, reason: reason)
            logger.error("the queue cannot be consumed; starting without it and trying again", metadata: [
                "queue": "\(queue)", "error": "\(reason)"])
            return nil
        }
    }

    /// Why `queue` could not be consumed, for the log and the readiness reason: the broker's bare 403 named
    /// neither the permission missing nor how to grant it.
    static func consumeFailure(_ error: any Error, queue: String, on connection: AMQPConnection) -> String {
        InputQueueAccessRefused.from(error, queue: queue, configuration: connection.configuration)
            .map { "\($0)" } ?? "\(error)"
    }

    /// Moves `queue`'s deliveries into the batch loop, from `first` (nil: not consumed yet) and from every
    /// consumer that replaces it (kept in `consuming` at `slot`). Returns once its consumer is cancelled and
    /// every delivery that came before the cancel has been moved (a graceful shutdown), or the endpoint stops
    /// while the queue is not consumed.
    func forward(_ first: AMQPConsumer?, of queue: String, to work: WorkQueue, on connection: AMQPConnection,
                 consuming: InputConsumers, slot: Int) async {
        var current = first
        while true {
            if let consumer = current {
                do {
                    for try await delivery in consumer.deliveries {
                        if isStopping { await forwardingDelayWhileStopping.wait() }
                        work.push(.delivery(delivery))
                    }
                    return  // cancelled: the endpoint is stopping
                } catch {
                    guard !Task.isCancelled, !isStopping else { return }
                    health.consumerLost(queue, reason: "\(error)")
                    logger.error("consumer ended; consuming the queue again until that works", metadata: [
                        "queue": "\(queue)", "error": "\(error)"])
                }
            }
            guard let next = await consumeAgain(queue, on: connection) else { return }
            consuming.replace(next, at: slot)
            if isStopping {
                // The shutdown may have cancelled the consumers before this one was listed.
                try? await next.cancel()
            }
            health.consumerResumed(next.queue)
            logger.notice("consuming the queue again", metadata: ["queue": "\(next.queue)"])
            current = next
        }
    }

    /// Consumes `queue` again, waiting about 1 s before the first attempt and doubling up to 30 s between
    /// them (with the transport's reconnect jitter, so endpoints do not retry in lockstep); nil once the
    /// endpoint stops. While the connection is down no attempt can work: it waits for the connection
    /// instead, and tries at once when it is back, the delay starting over. (Counting those attempts, a
    /// queue lost with its vhost was consumed again up to 30 s after an operator had created it again.)
    private func consumeAgain(_ queue: String, on connection: AMQPConnection) async -> AMQPConsumer? {
        let policy = RecoveryPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(30))
        var attempt = 0
        var delay: Duration? = policy.delay(attempt: 0)
        while true {
            // Cut short by a graceful shutdown: the batch loop's intake ends only once every forwarder has.
            if let delay { await BatchPipeline.pause(delay, unless: { self.isStopping }) }
            guard !Task.isCancelled, !isStopping else { return nil }
            do {
                return try await connection.consume(queue: queue, prefetch: configuration.prefetch,
                                                    consumerTag: consumerTag(for: queue))
            } catch let error as AMQPError where MessageSession.isLostConnection(error) {
                health.consumerLost(queue, reason: "\(error)")
                guard await waitForConnection(connection) else { return nil }
                attempt = 0
                delay = nil
            } catch {
                attempt += 1
                delay = policy.delay(attempt: attempt)
                let reason = Self.consumeFailure(error, queue: queue, on: connection)
                health.consumerLost(queue, reason: reason)
                logger.warning("the queue still cannot be consumed; trying again", metadata: [
                    "queue": "\(queue)", "error": "\(reason)", "attempt": "\(attempt)"])
            }
        }
    }

    /// Waits until `connection` is open again; false when the endpoint stops (or the connection is closed)
    /// first.
    private func waitForConnection(_ connection: AMQPConnection) async -> Bool {
        while !Task.isCancelled, !isStopping {
            do {
                try await connection.waitUntilConnected(timeout: .seconds(1))
                return true
            } catch let error as AMQPError where error.code == .closed {
                return false
            } catch {
                continue
            }
        }
        return false
    }

    func consumerTag(for queue: String) -> String {
        "\(configuration.connectionName)-\(queue)-\(UUID().uuidString.prefix(8))"
    }
}

/// The consumer of each forwarder as it is now (a queue consumed again has a new one), for the graceful
/// shutdown to cancel. Kept by the forwarder's slot, the one thing that names a forwarder: kept by queue name,
/// a queue listed twice in `inputQueues` (refused by `check()` since) had two consumers, one hid the other,
/// which was never cancelled, and the shutdown never ended.
final class InputConsumers: Sendable {
    private let consumers: Mutex<[AMQPConsumer?]>

    /// One slot per forwarder; nil while its queue is not consumed.
    init(_ consumers: [AMQPConsumer?]) { self.consumers = Mutex(consumers) }

    func replace(_ consumer: AMQPConsumer, at slot: Int) { consumers.withLock { $0[slot] = consumer } }

    var all: [AMQPConsumer] { consumers.withLock { $0.compactMap { $0 } } }
}
