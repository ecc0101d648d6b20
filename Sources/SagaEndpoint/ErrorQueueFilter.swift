/// Which error-queue copies an operation takes: by the failure's kind (`x-error-type`), the queue the
/// message failed in (`x-original-queue`) and its message type. Empty fields match everything.
///
/// After fixing one bug, an operator replays the failures it caused, not every failure of the queue
/// (the others would fail again and gain a replay each); NServiceBus and MassTransit tooling retries a
/// group of failures the same way.
public struct ErrorQueueFilter: Sendable, Equatable {
    public var errorType: String?
    public var originalQueue: String?
    public var messageType: String?

    public init(errorType: String? = nil, originalQueue: String? = nil, messageType: String? = nil) {
        self.errorType = errorType
        self.originalQueue = originalQueue
        self.messageType = messageType
    }

    /// Matches every copy.
    public static let all = ErrorQueueFilter()

    public var isEmpty: Bool { errorType == nil && originalQueue == nil && messageType == nil }

    public func matches(_ entry: ErrorQueueEntry) -> Bool {
        (errorType == nil || entry.errorType == errorType)
            && (originalQueue == nil || entry.originalQueue == originalQueue)
            && (messageType == nil || entry.type == messageType)
    }
}
