public import AMQPTransport

/// Why `MessageSession` could not deliver a message to the broker, or `RequestClient` got no usable reply
/// to it, with the message and its destination.
public struct MessageSessionError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as an extensible set of codes (new cases do not break `switch`-free callers).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The message could not be built or carried: its body did not encode; an id, queue or exchange is
        /// empty; a name, property or header key is over 255 bytes, or the headers do not fit in one frame.
        /// Nothing was sent.
        public static let invalidMessage = Code("invalidMessage")
        /// A command's queue does not exist (the broker returned the mandatory publish). Declare the
        /// queue (the endpoint declares its own input queues when it starts); the message was not taken.
        public static let unroutable = Code("unroutable")
        /// An event's exchange does not exist (the broker closed the publishing channel with 404). Declare
        /// it; the message was not taken. The session stays usable.
        public static let exchangeNotFound = Code("exchangeNotFound")
        /// The user may not publish there: the broker closed the publishing channel with 403 ACCESS_REFUSED
        /// (no write permission on the exchange; a command's is `amq.default`). Nothing was taken, and
        /// sending it again fails the same way until an operator grants the permission. The session stays
        /// usable.
        public static let accessRefused = Code("accessRefused")
        /// The broker refused the message (basic.nack), e.g. a full queue with `x-overflow: reject-publish`.
        public static let nacked = Code("nacked")
        /// The session's connection was closed by this client (`close()`): nothing more can be sent on it.
        /// A message in flight then may or may not have been taken; send it on another session.
        public static let closed = Code("closed")
        /// The calling task was cancelled before the broker confirmed: the message may or may not have been
        /// taken (send it again with the same message id if it is still wanted).
        public static let cancelled = Code("cancelled")
        /// No confirm came before the session's resend window ended (the connection stayed lost, or the
        /// login is refused): the message may or may not have been taken. Send it again with the same
        /// message id; the endpoint's inbox drops a second copy.
        public static let notConfirmed = Code("notConfirmed")
        /// A request (`RequestClient`) was delivered but no reply came within its timeout: the request may
        /// or may not have been handled (its reply may still come, and is then dropped). Send it again
        /// under a new message id only if handling it twice is harmless: the receiving endpoint's inbox
        /// drops a copy under the same id without replying again.
        public static let noReply = Code("noReply")
        /// A request's reply is not of the type asked for, or its body did not decode as one. The reason
        /// names the reply's type; to take replies of several types, use `RequestClient.request(_:to:…)`
        /// and look at `Reply.type`.
        public static let unexpectedReply = Code("unexpectedReply")
    }

    public var code: Code
    /// The message's id (`message_id`).
    public var messageId: String
    /// The message's type (`type`).
    public var messageType: String
    /// Where it went: "queue 'q'" or "exchange 'x' with routing key 'k'".
    public var destination: String
    /// What went wrong, in words.
    public var reason: String
    /// The transport's error, when there was one.
    public var underlying: AMQPError?

    public init(_ code: Code, messageId: String, messageType: String, destination: String, reason: String,
                underlying: AMQPError? = nil) {
        self.code = code
        self.messageId = messageId
        self.messageType = messageType
        self.destination = destination
        self.reason = reason
        self.underlying = underlying
    }

    public var description: String {
        "MessageSessionError(\(code)): \(messageType) \(messageId) to \(destination): \(reason)"
    }
}
