public import Logging

extension AMQPConnection {
    /// Connects, waiting for a broker that cannot be reached yet (it starts after its clients, or is
    /// restarting): every failed attempt is logged and retried after the recovery policy's backoff, until
    /// it succeeds or the task is cancelled. Retried: the broker unreachable, a socket closed before its
    /// greeting, and a handshake closed with 320 CONNECTION_FORCED (a node shutting down). Failures no retry
    /// can fix throw at once: a refused login or a vhost that does not exist (`.authenticationFailed`),
    /// any other close in the handshake (`.handshakeFailed`: a protocol error, …), a bad TLS setup
    /// (`AMQPError.handshake` decides). For services; a one-shot command should fail instead.
    public static func connectRetrying(
        _ configuration: AMQPConfiguration, recovery: RecoveryPolicy = .default,
        logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        var attempt = 0
        while true {
            do {
                return try await connect(configuration, recovery: recovery, logger: logger)
            } catch let error as AMQPError where error.isTransient {
                // Unreachable, a lost socket, or 320 CONNECTION_FORCED in the handshake.
                let delay = recovery.delay(attempt: attempt)
                attempt += 1
                logger.warning("broker unreachable; retrying", metadata: [
                    "amqp.url": "\(configuration.redactedURL)", "error": "\(error)", "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}
