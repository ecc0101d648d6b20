public import Foundation

/// The persisted state of one saga instance, identified by (sagaType, correlationId).
public struct SagaRecord: Sendable, Equatable {
    public var sagaType: String
    public var correlationId: String
    /// A UUID string, unique across all sagas; stable for the saga's whole life.
    public var sagaId: String
    /// The saga's state as JSON bytes (stored as TEXT, so it must be valid UTF-8).
    public var state: Data
    /// Incremented by every successful update; the basis of optimistic concurrency.
    public var version: Int
    /// Where and how to reply to whoever started the saga.
    public var originatorReplyTo: String?
    public var originatorCorrelationId: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        sagaType: String,
        correlationId: String,
        sagaId: String = UUID().uuidString,
        state: Data,
        version: Int = 1,
        originatorReplyTo: String? = nil,
        originatorCorrelationId: String? = nil,
        createdAt: Date,
        updatedAt: Date? = nil
    ) {
        self.sagaType = sagaType
        self.correlationId = correlationId
        self.sagaId = sagaId
        self.state = state
        self.version = version
        self.originatorReplyTo = originatorReplyTo
        self.originatorCorrelationId = originatorCorrelationId
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
    }
}
