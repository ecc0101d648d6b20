public import AMQPTransport

/// Some exchanges, queues or bindings of an `EndpointTopology` could not be declared: each with the
/// broker's or the client's reason (406 PRECONDITION_FAILED when one exists with other settings, 403 when
/// the user may not configure it, not connected, …).
public struct TopologyDeclarationError: Error, CustomStringConvertible {
    public struct Failure: Sendable, CustomStringConvertible {
        public var declaration: RecordedDeclaration
        public var error: any Error

        public var description: String {
            guard let hint = permissionHint else { return "\(declaration): \(error)" }
            return "\(declaration): \(error); \(hint)"
        }

        /// For a 403 (ACCESS_REFUSED), which RabbitMQ permission the connection's user lacks: the broker's
        /// text names the resource and the kind of access, not what an operator grants with
        /// `rabbitmqctl set_permissions` (configure, write, read, each a pattern of names).
        public var permissionHint: String? {
            guard let error = error as? AMQPError, error.replyCode == 403 else { return nil }
            switch declaration {
            case .exchange(let exchange):
                return "the user needs the configure permission on '\(exchange.name)' in the vhost"
            case .queue(let queue):
                return "the user needs the configure permission on '\(queue.name)' in the vhost"
            case .binding(let binding):
                return "the user needs the write permission on '\(binding.destination)' and the read permission on "
                    + "'\(binding.source)' in the vhost"
            }
        }
    }

    public var failures: [Failure]

    public var description: String {
        "cannot declare the topology:\n  " + failures.map(\.description).joined(separator: "\n  ")
    }
}
