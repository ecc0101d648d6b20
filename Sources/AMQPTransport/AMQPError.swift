/// Errors of the AMQP transport, with the context needed to act on them.
public struct AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as an extensible set of codes (new cases do not break `switch`-free callers).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The URL could not be parsed.
        public static let invalidURL = Code("invalidURL")
        /// The TCP or TLS connection could not be opened.
        public static let connectFailed = Code("connectFailed")
        /// The broker's TLS certificate did not verify: not signed by a CA this client trusts (`cacertfile`),
        /// or not naming the host connected to. Not transient: a setting or the certificate must change.
        public static let tlsVerificationFailed = Code("tlsVerificationFailed")
        /// The broker refused the login (wrong credentials, no access to the vhost, a vhost that does not
        /// exist): 403, or 530 for anything but a connection limit. Not transient.
        public static let authenticationFailed = Code("authenticationFailed")
        /// The broker refused the connection because a connection limit is reached: the vhost's
        /// (`rabbitmqctl set_vhost_limits … '{"max-connections": N}'`) or the user's (`set_user_limits`),
        /// a 530 NOT_ALLOWED "… connection limit (N) is reached". Transient: a slot frees up when another
        /// connection closes, e.g. once endpoints reconnecting at the same time are through.
        public static let connectionLimit = Code("connectionLimit")
        /// The broker closed the connection in its handshake, or while it was set up right after the login
        /// (channel.open, confirm.select; on a recovery, declaring the topology again), with a reply code no
        /// retry can fix, e.g. 501 FRAME_ERROR, 502 SYNTAX_ERROR, 503 COMMAND_INVALID, 504 CHANNEL_ERROR, 505
        /// UNEXPECTED_FRAME, 540 NOT_IMPLEMENTED (a client the broker does not understand), 402 INVALID_PATH,
        /// 530 NOT_ALLOWED after the login (its channel_max reached) (not 320 nor 541 INTERNAL_ERROR, e.g. a
        /// vhost that is down: those are a transient `.connectionClosed`). `replyCode`, `message` and
        /// `operation` give the broker's reason and what was refused. Also a server that answers the handshake
        /// with something that is not AMQP 0-9-1 (another protocol on that port, e.g. HTTP) or offers no PLAIN
        /// login (no `replyCode` then). Not transient.
        public static let handshakeFailed = Code("handshakeFailed")
        /// The broker closed the channel (e.g. 404 NOT_FOUND, 406 PRECONDITION_FAILED). The connection
        /// stays usable.
        public static let channelClosed = Code("channelClosed")
        /// The broker closed the connection (e.g. 320 CONNECTION_FORCED by an operator).
        public static let connectionClosed = Code("connectionClosed")
        /// The connection was lost (socket error, missed heartbeats); it is being recovered.
        public static let connectionLost = Code("connectionLost")
        /// The operation needs a connection and there is none right now (recovering, or closed).
        public static let notConnected = Code("notConnected")
        /// A mandatory publish could not be routed to any queue (basic.return).
        public static let unroutable = Code("unroutable")
        /// The broker negatively acknowledged a publish (basic.nack).
        public static let nacked = Code("nacked")
        /// An ack/nack/reject for a delivery received on an earlier connection or channel: the broker
        /// will redeliver that message, so the acknowledgement is dropped. Also for a delivery of a
        /// cancelled consumer settled before: its channel closed once all its deliveries were settled.
        public static let staleDelivery = Code("staleDelivery")
        /// The broker cancelled the consumer (e.g. its queue was deleted).
        public static let consumerCancelled = Code("consumerCancelled")
        /// Every channel number the broker allows on this connection (its negotiated channel_max) is taken
        /// by consumers, or by cancelled consumers whose deliveries are not all settled yet. Nothing was
        /// sent; the connection is fine. Cancel a consumer or settle its deliveries, or raise channel_max.
        /// Also how a consumer ends when the connection recovers onto a broker whose channel_max is now below
        /// that consumer's channel (the other consumers are restored).
        public static let channelLimit = Code("channelLimit")
        /// The connection was closed by this client.
        public static let closed = Code("closed")
        /// The task waiting for the broker was cancelled (e.g. a shutdown's grace period ended while a
        /// resource alarm held the confirms back). The publish may still be confirmed by the broker later.
        public static let cancelled = Code("cancelled")
        /// rabbitmq-c reported an error not covered above.
        public static let library = Code("library")
        /// A configuration value is invalid.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A value AMQP cannot carry, e.g. a queue name, routing key or property longer than 255 bytes.
        /// Nothing was sent; the connection is fine.
        public static let invalidArgument = Code("invalidArgument")
    }

    public var code: Code
    /// The AMQP reply code of a channel or connection close (404, 406, 320, …), or a return's.
    public var replyCode: UInt16?
    /// The broker's reply text, or rabbitmq-c's error string.
    public var message: String
    /// What the client was doing: "queue.declare transfers", "publish to exchange 'x' key 'y'".
    public var operation: String?
    /// rabbitmq-c's status code, where one applies.
    public var libraryStatus: Int32?

    public init(_ code: Code, replyCode: UInt16? = nil, message: String, operation: String? = nil,
                libraryStatus: Int32? = nil) {
        self.code = code
        self.replyCode = replyCode
        self.message = message
        self.operation = operation
        self.libraryStatus = libraryStatus
    }

    /// True when the operation may succeed if tried again after the connection recovers.
    public var isTransient: Bool {
        [.connectionLost, .notConnected, .connectionClosed, .connectFailed, .connectionLimit].contains(code)
    }

    public var description: String {
        var text = "AMQP \(code)"
        if let replyCode { text += " \(replyCode)" }
        text += ": \(message)"
        if let operation { text += " (during \(operation))" }
        return text
    }

    func during(_ operation: String) -> AMQPError {
        var copy = self
        if copy.operation == nil { copy.operation = operation }
        return copy
    }
}
