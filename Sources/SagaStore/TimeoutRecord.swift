public import Foundation

/// A message a saga asked to receive back at `dueAt` (a saga timeout).
public struct TimeoutRecord: Sendable, Equatable {
    public var timeoutId: String
    /// The saga that requested it; cancelled together with that saga.
    public var sagaType: String
    public var correlationId: String
    public var dueAt: Date
    public var messageType: String
    public var body: Data
    public var headers: [String: String]
    public var createdAt: Date

    public init(
        timeoutId: String = UUID().uuidString,
        sagaType: String,
        correlationId: String,
        dueAt: Date,
        messageType: String,
        body: Data,
        headers: [String: String] = [:],
        createdAt: Date
    ) {
        self.timeoutId = timeoutId
        self.sagaType = sagaType
        self.correlationId = correlationId
        self.dueAt = dueAt
        self.messageType = messageType
        self.body = body
        self.headers = headers
        self.createdAt = createdAt
    }
}

/// What identifies a stored timeout: its id within the saga that requested it (a delayed retry's row
/// names the message as its correlation id and an empty saga type). The store finds the row through
/// the saga's row number when the saga is stored, else through a partial index on all three, so no
/// index is kept on the random id alone.
public struct TimeoutKey: Sendable, Hashable {
    public var sagaType: String
    public var correlationId: String
    public var timeoutId: String

    public init(sagaType: String, correlationId: String, timeoutId: String) {
        self.sagaType = sagaType
        self.correlationId = correlationId
        self.timeoutId = timeoutId
    }
}

extension TimeoutRecord {
    public var key: TimeoutKey { TimeoutKey(sagaType: sagaType, correlationId: correlationId, timeoutId: timeoutId) }
}
