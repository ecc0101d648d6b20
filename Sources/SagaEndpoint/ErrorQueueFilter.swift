/// Which error-queue copies an operation takes: by the failure's kind (`x-error-type`), the queue the
/// message failed in (`x-original-queue`), the exchange an event was published to (`x-original-exchange`)
/// and its message type. Empty fields match everything.
///
/// An event's copy (an outgoing event the broker kept refusing) names its exchange and routing key, not a
/// queue: `originalQueue` never matches it, `originalExchange` selects it (and matches no other copy).
///
/// After fixing one bug, an operator replays the failures it caused, not every failure of the queue
/// (the others would fail again and gain a replay each); NServiceBus and MassTransit tooling retries a
/// group of failures the same way.
public struct ErrorQueueFilter: Sendable, Equatable {
    public var errorType: String?
    public var originalQueue: String?
    public var originalExchange: String?
    public var messageType: String?

    public init(errorType: String? = nil, originalQueue: String? = nil, originalExchange: String? = nil,
                messageType: String? = nil) {
        self.errorType = errorType
        self.originalQueue = originalQueue
        self.originalExchange = originalExchange
        self.messageType = messageType
    }

    /// Matches every copy.
    public static let all = ErrorQueueFilter()

    public var isEmpty: Bool { errorType == nil && originalQueue == nil && originalExchange == nil && messageType == nil }

    public func matches(_ entry: ErrorQueueEntry) -> Bool {
        (errorType == nil || entry.errorType == errorType)
            && (originalQueue == nil || entry.originalQueue == originalQueue)
            && (originalExchange == nil || entry.originalExchange == originalExchange)
            && (messageType == nil || entry.type == messageType)
    }
}
