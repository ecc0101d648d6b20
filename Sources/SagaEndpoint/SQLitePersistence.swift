import Foundation
import SagaStore
import Sagas

/// The saga dispatcher's storage, on the endpoint's SQLite store, inside the batch's transaction.
struct SQLitePersistence: SagaPersistence {
    let store: SagaStore

    func loadSaga(_ key: SagaInstanceKey) throws -> StoredSaga? {
        try store.loadSaga(type: key.sagaType, correlationId: key.correlationId).map { record in
            StoredSaga(
                key: key, sagaId: record.sagaId, state: record.state, version: record.version,
                originator: Originator(replyTo: record.originatorReplyTo, correlationId: record.originatorCorrelationId),
                createdAt: record.createdAt, updatedAt: record.updatedAt)
        }
    }

    func insertSaga(_ saga: StoredSaga) throws {
        try store.insertSaga(SagaRecord(
            sagaType: saga.key.sagaType, correlationId: saga.key.correlationId, sagaId: saga.sagaId,
            state: saga.state, version: saga.version, originatorReplyTo: saga.originator.replyTo,
            originatorCorrelationId: saga.originator.correlationId, createdAt: saga.createdAt, updatedAt: saga.updatedAt))
    }

    func updateSaga(_ saga: StoredSaga, expectedVersion: Int) throws {
        try store.updateSaga(type: saga.key.sagaType, correlationId: saga.key.correlationId, state: saga.state,
                             expectedVersion: expectedVersion, at: saga.updatedAt)
    }

    func deleteSaga(_ key: SagaInstanceKey, expectedVersion: Int) throws {
        try store.deleteSaga(type: key.sagaType, correlationId: key.correlationId, expectedVersion: expectedVersion)
    }
}
