public import Foundation
public import Sagas

/// Starting a saga in a given state: a test of one handler from halfway through, or of a state an older
/// version of the saga stored.
extension SagaTestHost {
    /// Stores a live instance of `S` in `state`, as a start message delivered now would have: a new saga
    /// id, version 1, created and updated at `now`, and `originator` (the `reply_to` and `correlation_id`
    /// of the message that started it, which `replyToOriginator` answers; none by default). Later
    /// deliveries find it as they would find a started instance.
    ///
    /// It is no delivery: nothing is emitted, nothing enters `history` or the inbox, and no timeout is
    /// requested. To run a timeout handler from the seeded state, deliver the timeout as the store hands
    /// it over when it falls due: `deliver(TimeoutRequest(...).asIncomingMessage())`.
    ///
    /// Throws `SagaSeedingError` when `S` is not registered in the host, the correlation id is empty, a
    /// live instance has this key already, or the state does not encode.
    @discardableResult
    public func seed<S: Saga>(
        _ saga: S.Type, correlationId: String, state: S,
        originator: Originator = Originator(replyTo: nil, correlationId: nil)
    ) throws(SagaSeedingError) -> StoredSaga {
        let key = try seedableKey(S.self, correlationId: correlationId)
        let json: Data
        do {
            json = try MessageCoding.encode(state)
        } catch SagaError.encodingFailed(_, let reason) {
            throw .stateNotEncodable(key, reason: reason)
        } catch {
            throw .stateNotEncodable(key, reason: "\(error)")
        }
        return store(key, json: json, originator: originator)
    }

    /// Stores a live instance of `S` whose state is this JSON text, byte for byte, as the endpoint keeps it
    /// in its database: for a state written by an earlier version of the saga. Otherwise as
    /// `seed(_:correlationId:state:originator:)`.
    ///
    /// The JSON is not decoded here. When it does not decode as `S`, the next delivery to the instance
    /// throws `SagaError.corruptSagaState` naming the instance and the field, and is rolled back with the
    /// state left as it was: the endpoint moves that message to its error queue (`x-error-type:
    /// CorruptSagaState`), without retries. `state(of:correlationId:)` records an issue for such an
    /// instance; `storedSaga(of:correlationId:)` shows it.
    @discardableResult
    public func seed<S: Saga>(
        _ saga: S.Type, correlationId: String, stateJSON: String,
        originator: Originator = Originator(replyTo: nil, correlationId: nil)
    ) throws(SagaSeedingError) -> StoredSaga {
        try seed(saga, correlationId: correlationId, stateJSON: Data(stateJSON.utf8), originator: originator)
    }

    /// `seed(_:correlationId:stateJSON:originator:)` with the JSON as bytes (a fixture file's contents).
    @discardableResult
    public func seed<S: Saga>(
        _ saga: S.Type, correlationId: String, stateJSON: Data,
        originator: Originator = Originator(replyTo: nil, correlationId: nil)
    ) throws(SagaSeedingError) -> StoredSaga {
        let key = try seedableKey(S.self, correlationId: correlationId)
        return store(key, json: stateJSON, originator: originator)
    }

    /// The key of a new instance of `S`, or why none can be seeded there.
    private func seedableKey<S: Saga>(_: S.Type, correlationId: String) throws(SagaSeedingError) -> SagaInstanceKey {
        guard registry.sagaTypes.contains(S.sagaType) else {
            throw .sagaNotRegistered(sagaType: S.sagaType, swiftType: String(reflecting: S.self),
                                     registered: registry.sagaTypes)
        }
        guard !correlationId.isEmpty else { throw .emptyCorrelationId(sagaType: S.sagaType) }
        let key = SagaInstanceKey(sagaType: S.sagaType, correlationId: correlationId)
        if let live = persistence.contents.sagas[key] {
            throw .instanceExists(key, sagaId: live.sagaId, version: live.version)
        }
        return key
    }

    /// Inserts the row a start at `now` inserts (`TypedSagaRunner.start`).
    private func store(_ key: SagaInstanceKey, json: Data, originator: Originator) -> StoredSaga {
        let saga = StoredSaga(key: key, sagaId: MessageIdentity.randomUUID(), state: json, version: 1,
                              originator: originator, createdAt: now, updatedAt: now)
        persistence.contents.sagas[key] = saga
        // A start makes an instance completed earlier live again; so does a seed.
        completed.remove(key)
        return saga
    }
}
