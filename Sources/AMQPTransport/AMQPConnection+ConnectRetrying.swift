public import Logging

extension AMQPConnection {
    /// Connects, waiting for a broker that cannot be reached yet (it starts after its clients, or is
    /// restarting): every failed attempt is logged and retried after the recovery policy's backoff, until
    /// it succeeds or the task is cancelled. Retried: the broker unreachable, a socket closed before its
    /// greeting, a handshake closed with 320 CONNECTION_FORCED (a node shutting down) or 541 INTERNAL_ERROR
    /// (a vhost that is down), and a vhost's or user's connection limit reached (`.connectionLimit`: it
    /// frees up as others close); after the login, while the publish channel is opened, a lost socket and
    /// a close with 320 or 541 too. Failures no retry can fix throw at once: a refused login or a vhost that
    /// does not exist (`.authenticationFailed`), any other close in the handshake or in the set-up after it
    /// (`.handshakeFailed`: a protocol error, the broker's channel_max reached, …), a channel the broker
    /// closed in that set-up (`.channelClosed`), a broker certificate that does not verify
    /// (`.tlsVerificationFailed`), settings out of range or TLS files that cannot be loaded
    /// (`.invalidConfiguration`). `AMQPError.socketOpen`, `AMQPError.handshake` and `AMQPError.setUp`
    /// decide. For services; a one-shot command should fail instead.
    public static func connectRetrying(
        _ configuration: AMQPConfiguration, recovery: RecoveryPolicy = .default,
        logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        var attempt = 0
        while true {
            do {
                return try await connect(configuration, recovery: recovery, logger: logger)
            } catch let error as AMQPError where error.isTransient {
                // Unreachable, a lost socket, 320 or 541 in the handshake or the set-up, a connection limit.
                let delay = recovery.delay(attempt: attempt)
                attempt += 1
                logger.warning("\(Self.retryReason(error)); retrying", metadata: [
                    "amqp.url": "\(configuration.redactedURL)", "error": "\(error)", "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }

    /// What a retry waits for, for its log line.
    private static func retryReason(_ error: AMQPError) -> String {
        switch error.code {
        case .connectionLimit: "connection limit reached"
        case .connectionClosed: "broker closed the connection"
        default: "broker unreachable"
        }
    }
}
