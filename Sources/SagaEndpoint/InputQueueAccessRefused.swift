public import AMQPTransport

/// The broker refused the endpoint's user the consume of an input queue (403 ACCESS_REFUSED on
/// basic.consume): the user has no read permission on that queue in the vhost. The endpoint does not stop
/// for it (at start it starts without that queue, and serves the others): it is not ready, with this as the
/// reason (`notReadyReason`, `/health/ready`, the log), and consumes the queue again with a backoff, so that
/// granting the permission is enough, no restart. Before, the reason was the broker's bare text, which says
/// neither which permission is missing nor how to grant it.
public struct InputQueueAccessRefused: Error, Sendable, Equatable, CustomStringConvertible {
    public var queue: String
    public var vhost: String
    public var user: String
    /// The permission the user lacks: `read` (RabbitMQ's for consuming a queue).
    public var permission: String
    /// The broker's refusal (channel closed with 403).
    public var error: AMQPError

    public init(queue: String, vhost: String, user: String, permission: String = "read", error: AMQPError) {
        self.queue = queue
        self.vhost = vhost
        self.user = user
        self.permission = permission
        self.error = error
    }

    /// `error` when it is the broker refusing the consume of `queue` on `configuration`'s user and vhost.
    /// Not a 403 for a queue another connection consumes exclusively ("in exclusive use"): RabbitMQ answers
    /// that with ACCESS_REFUSED too, and the reason told the operator to grant a permission the user had.
    static func from(_ error: any Error, queue: String, configuration: AMQPConfiguration) -> InputQueueAccessRefused? {
        guard let error = error as? AMQPError, error.code == .channelClosed, error.replyCode == 403,
              !error.message.contains("in exclusive use") else { return nil }
        return InputQueueAccessRefused(queue: queue, vhost: configuration.vhost, user: configuration.user, error: error)
    }

    public var description: String {
        "user '\(user)' may not consume input queue '\(queue)' in vhost '\(vhost)': it needs \(permission) permission "
            + "on '\(queue)' (rabbitmqctl set_permissions -p '\(vhost)' '\(user)' CONFIGURE WRITE READ, with READ "
            + "matching '\(queue)'; \(error))"
    }
}
