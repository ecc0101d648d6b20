/// Errors of the saga programming model. Each carries the context needed to act on it.
public enum SagaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The body could not be decoded as the message type named by its `type` property.
    case malformedMessage(type: String, reason: String)
    /// A value could not be encoded as JSON.
    case encodingFailed(type: String, reason: String)
    /// No saga or handler in this endpoint handles the message type.
    case noHandler(type: String)
    /// The correlation id the saga declared for this message is missing or empty.
    case missingCorrelationId(sagaType: String, messageType: String)
    /// `reply` was called for a message without `reply_to`.
    case noReplyAddress(messageType: String, messageId: String)
    /// A saga-only context operation was used from a stateless handler.
    case notInSaga(operation: String)
    /// A saga's stored state could not be decoded (a schema change without migration?).
    case corruptSagaState(saga: SagaInstanceKey, reason: String)

    public var description: String {
        switch self {
        case .malformedMessage(let type, let reason): "malformed message of type '\(type)': \(reason)"
        case .encodingFailed(let type, let reason): "cannot encode \(type) as JSON: \(reason)"
        case .noHandler(let type): "no saga or handler handles message type '\(type)'"
        case .missingCorrelationId(let saga, let type): "message '\(type)' has no correlation id for saga \(saga)"
        case .noReplyAddress(let type, let id): "cannot reply to '\(type)' message \(id): it has no reply_to"
        case .notInSaga(let operation): "\(operation) is only available in a saga handler"
        case .corruptSagaState(let saga, let reason): "state of saga \(saga) cannot be decoded: \(reason)"
        }
    }
}
