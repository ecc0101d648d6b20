public import Logging

extension AMQPConnection {
    /// Connects, waiting for a broker that cannot be reached yet (it starts after its clients, or is
    /// restarting): every failed attempt is logged and retried after the recovery policy's backoff, until
    /// it succeeds or the task is cancelled. Failures no retry can fix (bad credentials, a vhost that does
    /// not exist, a bad TLS setup) throw at once. For services; a one-shot command should fail instead.
    public static func connectRetrying(
        _ configuration: AMQPConfiguration, recovery: RecoveryPolicy = .default,
        logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        var attempt = 0
        while true {
            do {
                return try await connect(configuration, recovery: recovery, logger: logger)
            } catch let error as AMQPError where error.isTransient {
                // Unreachable, a lost socket, or a connection.close in the handshake that is not a refused
                // login (403 and 530 are `.authenticationFailed`): e.g. 320 from a node shutting down.
                let delay = recovery.delay(attempt: attempt)
                attempt += 1
                logger.warning("broker unreachable; retrying", metadata: [
                    "amqp.url": "\(configuration.redactedURL)", "error": "\(error)", "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}
