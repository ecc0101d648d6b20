import CRabbitMQ
import Foundation

// Publishing with confirms on channel 2 (confirm mode): each publish gets a sequence number, and its
// outcome comes from the broker's basic.ack / basic.nack / basic.return, read by the pump.
extension AMQPConnection {
    /// Publishes one message and waits for the broker's confirm. Throws `.unroutable` (mandatory and no
    /// queue bound), `.nacked`, or the channel/connection error that prevented the confirm.
    public func publish(_ request: PublishRequest) async throws {
        let outcome = await publish([request])[0]
        try Self.check(outcome, request)
    }

    /// Publishes a batch and waits for all its confirms at once; one outcome per request, in order.
    /// `afterSending` runs once every frame of the batch has been written to the socket, before the
    /// confirms are awaited (tests use it to stop a process between sending and confirming).
    ///
    /// Cancelling the calling task ends the wait: the publishes not confirmed by then fail with `.cancelled`
    /// (they may still reach their queues). Without that a graceful shutdown could never end while the
    /// broker held the confirms back (a resource alarm blocks publishing connections). A task cancelled
    /// before it calls this sends nothing: every publish fails with `.cancelled`.
    public func publish(_ requests: [PublishRequest], afterSending: (@Sendable () -> Void)? = nil) async -> [PublishOutcome] {
        guard !requests.isEmpty else { return [] }
        let waiting = WaitingConfirmBatch()
        let ticket = stuckWrites.ticket()
        defer { stuckWrites.release(ticket) }
        return await withTaskCancellationHandler {
            await publish(requests, waiting: waiting, ticket: ticket, afterSending: afterSending)
        } onCancel: {
            Task { await self.stopWaiting(waiting) }
            // The actor cannot run the line above while its thread is stuck writing this batch.
            self.stuckWrites.cancelled(ticket)
        }
    }

    /// Settles what `waiting`'s batch still waits for with `.cancelled`; later confirms of it are ignored.
    private func stopWaiting(_ waiting: WaitingConfirmBatch) {
        guard let batch = waiting.batch else { return }
        let error = AMQPError(.cancelled, message: "stopped waiting for the broker's confirm: the task was cancelled",
                              operation: "publish")
        for index in batch.requests.indices { batch.settle(index, .failed(error)) }
    }

    private func publish(_ requests: [PublishRequest], waiting: WaitingConfirmBatch, ticket: UInt64,
                         afterSending: (@Sendable () -> Void)?) async -> [PublishOutcome] {
        await withCheckedContinuation { continuation in
            let batch = confirms.beginBatch(requests, continuation: continuation)
            waiting.batch = batch
            // Cancelled already (the handler ran before the batch existed and found nothing to stop):
            // send nothing, rather than report as failed what may then reach its queue.
            if Task.isCancelled {
                stopWaiting(waiting)
                return
            }
            var failure: AMQPError?
            let arena = CArena()
            do {
                try onChannel(Self.publishChannel, "publish") { _ in }
            } catch let error as AMQPError {
                failure = error
            } catch {
                failure = AMQPError(.library, message: "\(error)")
            }
            stuckWrites.begin(socket: session?.socketFD ?? -1, ticket: ticket)
            for index in requests.indices {
                if let failure {
                    confirms.settleUnsent(batch: batch, index: index, .failed(failure))
                    continue
                }
                guard let session = self.session else {
                    failure = AMQPError(.notConnected, message: "not connected", operation: "publish")
                    confirms.settleUnsent(batch: batch, index: index, .failed(failure!))
                    continue
                }
                do {
                    try ProtocolLimits.check(requests[index], frameMax: session.frameMax)
                } catch {
                    // This publish alone cannot be sent; the others of the batch go on.
                    confirms.settleUnsent(batch: batch, index: index, .failed(error as? AMQPError
                        ?? AMQPError(.invalidArgument, message: "\(error)")))
                    continue
                }
                arena.reset()
                let rc = Self.send(requests[index], on: session, arena: arena)
                if rc == AMQP_STATUS_OK.rawValue {
                    confirms.sent(batch: batch, index: index)
                } else {
                    let error = AMQPError(.connectionLost, message: AMQPSession.statusText(rc),
                                          operation: "publish to '\(requests[index].exchange)' key '\(requests[index].routingKey)'",
                                          libraryStatus: rc)
                    failure = error
                    confirms.settleUnsent(batch: batch, index: index, .failed(error))
                    // Before the session can go (and close its socket, whose number may then be reused).
                    stuckWrites.end()
                    connectionLost(error)
                }
            }
            stuckWrites.end()
            // The frames are written; the confirms have not been awaited yet (a crash test hook).
            afterSending?()
        }
    }

    private static func send(_ request: PublishRequest, on session: AMQPSession, arena: CArena) -> Int32 {
        var properties = arena.properties(request.message.properties)
        return request.message.body.withUnsafeBytes { body in
            amqp_basic_publish(session.state, publishChannel, arena.bytes(request.exchange),
                               arena.bytes(request.routingKey), request.mandatory ? 1 : 0, 0, &properties,
                               amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
    }

    static func check(_ outcome: PublishOutcome, _ request: PublishRequest) throws {
        let target = "publish to exchange '\(request.exchange)' key '\(request.routingKey)'"
        switch outcome {
        case .confirmed: return
        case .returned(let code, let text):
            throw AMQPError(.unroutable, replyCode: code, message: text, operation: target)
        case .nacked:
            throw AMQPError(.nacked, message: "the broker nacked the message", operation: target)
        case .failed(let error):
            throw error.during(target)
        }
    }
}

/// The batch a `publish` call waits for, for its cancellation handler, which runs on another thread.
/// `@unchecked Sendable`: `batch` is set and read only on the connection's actor (the publish sets it
/// there, and the handler hops there to read it).
private final class WaitingConfirmBatch: @unchecked Sendable {
    var batch: ConfirmBatch?
}
