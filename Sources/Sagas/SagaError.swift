/// Errors of the saga programming model. Each carries the context needed to act on it.
public enum SagaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The body could not be decoded as the message type named by its `type` property.
    case malformedMessage(type: String, reason: String)
    /// A value could not be encoded as JSON.
    case encodingFailed(type: String, reason: String)
    /// No saga or handler in this endpoint handles the message type.
    case noHandler(type: String)
    /// The correlation id the saga declared for this message is missing or empty. `correlation` names
    /// where the saga reads it (`correlation_id`, the AMQP property; a key path such as
    /// `\ShipmentConfirmed.orderId`; a custom correlation's label): "no correlation id" alone did not say
    /// whether a reply lacked its AMQP correlation_id or a body its field.
    case missingCorrelationId(sagaType: String, messageType: String, correlation: String)
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
        case .missingCorrelationId(let saga, let type, let correlation):
            "message '\(type)' has no correlation id for saga \(saga): its \(correlation) is missing or empty"
        case .noReplyAddress(let type, let id): "cannot reply to '\(type)' message \(id): it has no reply_to"
        case .notInSaga(let operation): "\(operation) is only available in a saga handler"
        case .corruptSagaState(let saga, let reason): "state of saga \(saga) cannot be decoded: \(reason)"
        }
    }
}
