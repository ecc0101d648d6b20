public import Sagas

/// Why `SagaTestHost.seed` refused to store an instance. Nothing is stored when it throws.
///
/// A state JSON that does not decode is not one of them: it is stored as given, as an older version of
/// the saga could have left it, and the next delivery to the instance throws `SagaError.corruptSagaState`.
public enum SagaSeedingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host's registry has no saga of this type: no message would ever reach the instance.
    case sagaNotRegistered(sagaType: String, swiftType: String, registered: [String])
    /// A live instance has this key already (seeded, or started by a delivery). The endpoint stores one
    /// instance per saga type and correlation id.
    case instanceExists(SagaInstanceKey, sagaId: String, version: Int)
    /// The correlation id is empty: the endpoint refuses every message that correlates to an empty id
    /// (`SagaError.missingCorrelationId`), so nothing could reach the instance.
    case emptyCorrelationId(sagaType: String)
    /// The state could not be encoded as JSON (a `Double` that is NaN or infinite, a date that is not
    /// finite); `reason` is the encoder's.
    case stateNotEncodable(SagaInstanceKey, reason: String)

    public var description: String {
        switch self {
        case .sagaNotRegistered(let sagaType, let swiftType, let registered):
            "cannot seed saga \(swiftType): the host's registry has no saga of type '\(sagaType)' (it has "
                + (registered.isEmpty ? "none" : registered.sorted().map { "'\($0)'" }.joined(separator: ", "))
                + "); register it in the registry the host is built with"
        case .instanceExists(let key, let sagaId, let version):
            "cannot seed saga \(key): a live instance exists already (saga id \(sagaId), version \(version)); "
                + "seed each correlation id once, before delivering messages to it"
        case .emptyCorrelationId(let sagaType):
            "cannot seed saga \(sagaType) with an empty correlation id: the endpoint refuses every message that "
                + "correlates to one"
        case .stateNotEncodable(let key, let reason):
            "cannot seed saga \(key): its state cannot be encoded as JSON: \(reason)"
        }
    }
}
