import Foundation
import Logging

// Recovery of a lost connection: reconnect attempts with backoff, each opening its socket and logging in on
// a thread of its own, then `establish` restores channels, topology and consumers on the connection's.
extension AMQPConnection {
    /// Opens a session on a new thread (rabbitmq-c blocks) and hands it over.
    private nonisolated static func openSession(_ configuration: AMQPConfiguration) async throws -> SessionHandOver {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<SessionHandOver, any Error>) in
            let thread = Thread {
                continuation.resume(with: Result { SessionHandOver(session: try AMQPSession(configuration: configuration)) })
            }
            thread.name = "amqp connect \(configuration.host)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Reconnects with backoff until it succeeds or the client closes the connection. Every failure is
    /// retried, those the first connect reports at once too (a refused login, a deleted vhost: 403, 530):
    /// as RabbitMQ's Java and .NET clients do, because an operator can fix them without touching this
    /// process (the password set back, the vhost created again, whose topology recovery then declares).
    /// Those are logged as errors that say so (`logReconnectFailure`), and `lastError` keeps the cause.
    func recover() async {
        var attempt = 0
        var delay = recovery.delay(attempt: 0)
        while !closedByClient, session == nil {
            try? await Task.sleep(for: delay)
            if closedByClient || Task.isCancelled { return }
            attempt += 1
            do {
                // The socket and the login (which may wait up to the connect timeout for a broker that
                // does not answer) happen on a thread of their own, so callers are not held up meanwhile:
                // they get .notConnected at once.
                let opened = try await Self.openSession(configuration).session
                if closedByClient {
                    opened.closeQuietly()
                    return
                }
                try establish(opened)
                recoveryCount += 1
                logger.info("AMQP connection recovered", metadata: ["attempts": "\(attempt)"])
            } catch {
                let failure = error as? AMQPError ?? AMQPError(.library, message: "\(error)")
                lastError = failure
                delay = recovery.delay(attempt: attempt)
                logReconnectFailure(failure, attempt: attempt, retryIn: delay)
            }
        }
    }

    /// A transient failure (the broker still away) is a warning; one the broker will repeat until an operator
    /// changes something (`isTransient` false: a refused login, a vhost deleted, a protocol error) is an
    /// error that says so, with `amqp.retry_helps=false`: as a warning like the others, a recovery that could
    /// never succeed on its own looked like a broker that is slow to come back.
    private func logReconnectFailure(_ failure: AMQPError, attempt: Int, retryIn delay: Duration) {
        var metadata: Logger.Metadata = [
            "attempt": "\(attempt)", "error": "\(failure)", "amqp.error_code": "\(failure.code)", "retry_in": "\(delay)",
            "amqp.retry_helps": "\(failure.isTransient)",
        ]
        if let replyCode = failure.replyCode { metadata["amqp.reply_code"] = "\(replyCode)" }
        if failure.isTransient {
            logger.warning("AMQP reconnect failed; retrying", metadata: metadata)
        } else {
            logger.error("""
                AMQP reconnect refused by the broker; it will refuse again until an operator fixes the cause \
                (credentials, permissions, vhost, settings); retrying
                """, metadata: metadata)
        }
    }
}
