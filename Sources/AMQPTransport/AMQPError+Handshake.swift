import CRabbitMQ

extension AMQPError {
    /// What a failed TCP or TLS connect (before any AMQP) is reported as: a broker certificate that does not
    /// verify is a setting to fix, not a broker to wait for (`.tlsVerificationFailed`, permanent: as a
    /// transient `.connectFailed`, `connectRetrying` retried it for ever); anything else, nothing listening
    /// or a TLS listener not ready, `.connectFailed`, transient.
    static func socketOpen(_ status: Int32, message: String) -> AMQPError {
        let verification = [AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue]
        return AMQPError(verification.contains(status) ? .tlsVerificationFailed : .connectFailed,
                         message: message, libraryStatus: status)
    }

    /// What a failed login (the AMQP handshake, up to connection.open-ok) is reported as. The one place
    /// that decides which handshake failures are transient, and so retried by `connectRetrying`:
    ///
    /// - a socket closed before the broker's connection.start (a proxy without a backend, a node not
    ///   ready) or a lost socket: `.connectionLost`, transient;
    /// - 320 CONNECTION_FORCED (a node shutting down, as in a rolling restart) and 541 INTERNAL_ERROR (the
    ///   broker's own failure: RabbitMQ's "vhost 'V' is down", until `rabbitmqctl restart_vhost`):
    ///   `.connectionClosed`, transient;
    /// - 530 NOT_ALLOWED because the vhost's or the user's connection limit is reached:
    ///   `.connectionLimit`, transient;
    /// - 403 ACCESS_REFUSED, any other 530 NOT_ALLOWED (a vhost that does not exist or the user may not
    ///   use), or a socket closed after connection.start (brokers without authentication_failure_close):
    ///   `.authenticationFailed`, permanent;
    /// - any other close (a protocol error, 402, …): `.handshakeFailed`, permanent;
    /// - an answer that is not AMQP 0-9-1 (a server of another protocol on that port, such as the
    ///   management UI's HTTP, or another AMQP version) or a broker that offers no PLAIN login:
    ///   `.handshakeFailed`, permanent (as the library errors they are, they were taken for a lost socket);
    /// - settings rabbitmq-c refuses before it answers the broker: `.invalidConfiguration`, permanent (the
    ///   ranges the handshake can carry are checked before it, `AMQPConfiguration.outOfRangeSettings`).
    ///
    /// `error` is what `AMQPSession.error(from:operation:)` made of the library's reply; `greetingReceived`
    /// tells whether the broker's connection.start came before the failure.
    static func handshake(_ error: AMQPError, greetingReceived: Bool, configuration c: AMQPConfiguration) -> AMQPError {
        let refused = { (reason: String) in
            AMQPError(.authenticationFailed, replyCode: error.replyCode,
                      message: "login refused for user '\(c.user)' on vhost '\(c.vhost)' (\(reason))")
        }
        if error.libraryStatus == AMQP_STATUS_INVALID_PARAMETER.rawValue {
            return AMQPError(
                .invalidConfiguration,
                message: "rabbitmq-c refused the connection settings (heartbeat \(c.heartbeat), channel_max "
                    + "\(c.channelMax), frame_max \(c.frameMax)): heartbeat and channel_max must be 0…65535 "
                    + "(\(error.message))",
                operation: error.operation, libraryStatus: error.libraryStatus)
        }
        if let notAMQP = notAMQP(error, configuration: c) { return notAMQP }
        guard error.code == .connectionClosed, let replyCode = error.replyCode else {
            let socketClosed = error.libraryStatus == AMQP_STATUS_CONNECTION_CLOSED.rawValue
                || error.libraryStatus == AMQP_STATUS_SOCKET_CLOSED.rawValue
            if socketClosed && greetingReceived { return refused(error.message) }
            if socketClosed && c.tls == nil && c.port == 5671 {
                // A TLS listener drops a plain connection without a word, as a proxy without a backend does;
                // only the port hints which it is, so it stays transient, with the hint in the warning.
                var hinted = error
                hinted.message += " (port 5671 is usually RabbitMQ's TLS listener: use amqps://)"
                return hinted
            }
            return error
        }
        switch replyCode {
        case 320, 541:
            // Nothing in the client's settings is wrong: a broker that is going down, or whose vhost is down
            // (a running endpoint's recovery retries it too), is waited out as an unreachable one.
            return error
        case 530 where isConnectionLimit(error.message):
            return AMQPError(
                .connectionLimit, replyCode: replyCode,
                message: "connection limit reached for user '\(c.user)' on vhost '\(c.vhost)' (\(error.message))",
                operation: error.operation)
        case 403, 530:
            return refused(error.message)
        default:
            return AMQPError(
                .handshakeFailed, replyCode: replyCode,
                message: "the broker refused the connection to vhost '\(c.vhost)' as '\(c.user)' in the handshake "
                    + "(\(error.message)); retrying will not help",
                operation: error.operation, libraryStatus: error.libraryStatus)
        }
    }

    /// rabbitmq-c's statuses for a peer whose answer is not AMQP 0-9-1 as this client speaks it. A RabbitMQ
    /// broker never causes them in a handshake: what does is a server of another protocol on that port
    /// (an HTTP server's `HTTP/1.1 400` is invalid AMQP data, an AMQP 1.0-only broker's protocol header an
    /// unexpected method), a broker of another version, or one without the PLAIN mechanism.
    private static func notAMQP(_ error: AMQPError, configuration c: AMQPConfiguration) -> AMQPError? {
        let target = "\(c.host):\(c.port)"
        let reason: String
        switch error.libraryStatus {
        case AMQP_STATUS_BAD_AMQP_DATA.rawValue, AMQP_STATUS_WRONG_METHOD.rawValue, AMQP_STATUS_UNKNOWN_CLASS.rawValue,
             AMQP_STATUS_UNKNOWN_METHOD.rawValue, AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            reason = "the server at \(target) does not speak AMQP 0-9-1 (\(error.message)): is the URL's port the "
                + "broker's AMQP listener (5672, or 5671 with amqps://) and not another service's, such as the "
                + "management UI's 15672?"
        case AMQP_STATUS_INCOMPATIBLE_AMQP_VERSION.rawValue:
            reason = "the server at \(target) speaks another version of AMQP than 0-9-1 (\(error.message))"
        case AMQP_STATUS_BROKER_UNSUPPORTED_SASL_METHOD.rawValue:
            reason = "the broker at \(target) does not offer the PLAIN login this client uses (\(error.message))"
        default:
            return nil
        }
        return AMQPError(.handshakeFailed, message: reason + "; retrying will not help",
                         operation: error.operation, libraryStatus: error.libraryStatus)
    }

    /// What a failure of the set-up right after the login is reported as: opening the publish channel and
    /// selecting confirms on it, and on a recovery declaring the recorded topology again and restoring the
    /// consumers. The other half of the connect classification (`handshake` is the first):
    ///
    /// - a lost socket (`.connectionLost`) and a connection closed with 320 CONNECTION_FORCED or 541
    ///   INTERNAL_ERROR (`.connectionClosed`): as in the handshake, transient;
    /// - a connection closed with any other reply code (530 NOT_ALLOWED when the broker's channel_max is
    ///   reached, 504 CHANNEL_ERROR, 503 COMMAND_INVALID, …): the broker answers the next attempt the same
    ///   way, so `.handshakeFailed`, permanent (as a transient `.connectionClosed`, `connectRetrying` retried
    ///   it for ever, logging it as a broker that closed the connection);
    /// - anything else as it is: a channel the broker closed (`.channelClosed`, e.g. a 403 on
    ///   confirm.select) and an unexpected reply (`.library`) are not transient already.
    static func setUp(_ error: AMQPError, configuration c: AMQPConfiguration) -> AMQPError {
        guard error.code == .connectionClosed, let replyCode = error.replyCode, ![320, 541].contains(replyCode) else {
            return error
        }
        return AMQPError(
            .handshakeFailed, replyCode: replyCode,
            message: "the broker closed the connection to vhost '\(c.vhost)' as '\(c.user)' while it was being set up "
                + "after the login (\(error.message)); retrying will not help",
            operation: error.operation, libraryStatus: error.libraryStatus)
    }

    /// RabbitMQ gives a connection limit the same 530 as a vhost that does not exist or may not be used;
    /// only the text tells them apart: "access to vhost 'VH' refused for user 'U': connection limit (N) is
    /// reached" (`set_vhost_limits`; other RabbitMQ versions write "vhost connection limit") and "connection refused
    /// for user 'U': user connection limit (N) is reached" (`set_user_limits`).
    private static func isConnectionLimit(_ replyText: String) -> Bool {
        let text = replyText.lowercased()
        return text.contains("connection limit (") && text.contains("is reached")
    }
}
