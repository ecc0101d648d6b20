public import Foundation

/// How often handling a message has failed, kept outside the failing transaction (which rolls back) so
/// retries can be counted across redeliveries and the message can be dead-lettered after N attempts.
public struct FailureRecord: Sendable, Equatable {
    public var messageId: String
    public var attempts: Int
    public var firstFailureAt: Date
    public var lastFailureAt: Date
    public var lastError: String
    /// Earliest time the next attempt should be made (delayed retry), if any.
    public var retryAfter: Date?

    public init(
        messageId: String,
        attempts: Int,
        firstFailureAt: Date,
        lastFailureAt: Date,
        lastError: String,
        retryAfter: Date? = nil
    ) {
        self.messageId = messageId
        self.attempts = attempts
        self.firstFailureAt = firstFailureAt
        self.lastFailureAt = lastFailureAt
        self.lastError = lastError
        self.retryAfter = retryAfter
    }
}
