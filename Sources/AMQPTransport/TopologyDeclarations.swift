/// An exchange to declare.
public struct ExchangeDeclaration: Sendable, Hashable {
    public struct Kind: Sendable, Hashable, RawRepresentable, ExpressibleByStringLiteral {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { rawValue = value }
        public static let direct = Kind(rawValue: "direct")
        public static let topic = Kind(rawValue: "topic")
        public static let fanout = Kind(rawValue: "fanout")
        public static let headers = Kind(rawValue: "headers")
    }

    public var name: String
    public var kind: Kind
    public var durable: Bool
    public var autoDelete: Bool
    public var `internal`: Bool
    public var arguments: FieldTable

    public init(name: String, kind: Kind, durable: Bool = true, autoDelete: Bool = false,
                internal: Bool = false, arguments: FieldTable = [:]) {
        self.name = name
        self.kind = kind
        self.durable = durable
        self.autoDelete = autoDelete
        self.internal = `internal`
        self.arguments = arguments
    }
}

/// A queue to declare. Classic by default; `.quorum(_:)` for a replicated quorum queue.
public struct QueueDeclaration: Sendable, Hashable {
    public var name: String
    public var durable: Bool
    public var exclusive: Bool
    public var autoDelete: Bool
    /// `x-queue-type`, `x-dead-letter-exchange`, `x-dead-letter-routing-key`, `x-message-ttl`, …
    public var arguments: FieldTable

    public init(name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
                arguments: FieldTable = [:]) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.arguments = arguments
    }

    public static func quorum(_ name: String, arguments: FieldTable = [:]) -> QueueDeclaration {
        var arguments = arguments
        arguments["x-queue-type"] = "quorum"
        return QueueDeclaration(name: name, durable: true, arguments: arguments)
    }

    /// Messages rejected without requeue (or expired) go to `exchange` with `routingKey`.
    public func deadLettering(to exchange: String, routingKey: String? = nil) -> QueueDeclaration {
        var copy = self
        copy.arguments["x-dead-letter-exchange"] = .string(exchange)
        if let routingKey { copy.arguments["x-dead-letter-routing-key"] = .string(routingKey) }
        return copy
    }
}

/// A binding of a queue (or exchange) to an exchange.
public struct BindingDeclaration: Sendable, Hashable {
    public enum DestinationKind: String, Sendable, Hashable { case queue, exchange }
    public var source: String
    public var destination: String
    public var destinationKind: DestinationKind
    public var routingKey: String
    public var arguments: FieldTable

    public init(source: String, destination: String, destinationKind: DestinationKind = .queue,
                routingKey: String = "", arguments: FieldTable = [:]) {
        self.source = source
        self.destination = destination
        self.destinationKind = destinationKind
        self.routingKey = routingKey
        self.arguments = arguments
    }
}

/// The reply to queue.declare: the queue's name (as the broker named it) and its counts.
public struct QueueState: Sendable, Hashable {
    public var name: String
    public var messageCount: Int
    public var consumerCount: Int
}
