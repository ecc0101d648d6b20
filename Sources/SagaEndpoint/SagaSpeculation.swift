import Foundation
import SagaStore
import Sagas

/// Which saga instance a handler saw under a key: its id, version and state. A saga id is never reused
/// and every committed change bumps the version, but a state the handlers wrote ahead of the transaction
/// is only a guess until its message commits (a duplicate's or a failing message's write never does), and
/// another message's commit can bring the instance to the same version with a different state. So the
/// state is compared too: equal id, version and state mean the handler saw what is stored.
struct SagaIdentity: Sendable, Equatable {
    var sagaId: String
    var version: Int
    var state: Data

    init(sagaId: String, version: Int, state: Data) {
        self.sagaId = sagaId
        self.version = version
        self.state = state
    }

    init(_ saga: StoredSaga) {
        self.init(sagaId: saga.sagaId, version: saga.version, state: saga.state)
    }
}

/// A saga write the handlers asked for, applied later in the batch's transaction.
enum SagaWrite: Sendable {
    case insert(StoredSaga)
    case update(StoredSaga, expectedVersion: Int)
    case delete(SagaInstanceKey, expectedVersion: Int)
}

/// What a message's sagas did when their handlers ran before the transaction, off the SQLite thread.
/// The transaction applies it only if every instance they read is still as they saw it (then running them
/// inside the transaction would have done exactly the same); otherwise it runs them again there.
struct SagaSpeculation: Sendable {
    enum Outcome: Sendable {
        case ran([SagaInvocation], writes: [SagaWrite])
        /// A handler (or decoding, or correlating) threw.
        case failed(any Error)
    }

    var outcome: Outcome
    /// Every instance the handlers read, as they saw it: nil when there was none.
    var reads: [(key: SagaInstanceKey, identity: SagaIdentity?)]
}

/// A saga state the handlers asked for that was not read beforehand (cannot happen: the keys come from
/// `MessageDispatcher.resolveSagas`). The transaction then runs the message itself.
struct UnreadSagaState: Error {
    var key: SagaInstanceKey
}

/// Saga storage for handlers that run before the transaction: it serves states read beforehand (on the
/// reader connection), overlaid with the writes of the batch's earlier messages, and records reads and
/// writes per message. Used by one task at a time, one message after the other, never shared.
final class SpeculativeSagaStates: SagaPersistence {
    private let stored: [SagaInstanceKey: StoredSaga]
    private let readKeys: Set<SagaInstanceKey>
    /// Writes of earlier messages of the batch, over those of the batch before; `.some(nil)` is a deleted
    /// instance.
    private var overlay: [SagaInstanceKey: StoredSaga?] = [:]
    /// Only this batch's writes (of messages whose handlers succeeded): what the batch after inherits.
    /// Not the inherited ones too: those are committed by then, and passing them on batch after batch
    /// would grow without bound and keep a stale state alive after a message ran again in its commit.
    private(set) var writtenStates: [SagaInstanceKey: StoredSaga?] = [:]
    private var reads: [(key: SagaInstanceKey, identity: SagaIdentity?)] = []
    private var writes: [SagaWrite] = []
    /// How to take back the current message's overlay changes when its handlers fail.
    private var undo: [(key: SagaInstanceKey, previous: StoredSaga??)] = []

    /// `stored` holds the instances found among `readKeys`; a key without an entry had none. `inherited`
    /// are the writes of the batch before, which was still committing when the states were read.
    init(stored: [SagaInstanceKey: StoredSaga], readKeys: Set<SagaInstanceKey>,
         inherited: [SagaInstanceKey: StoredSaga?] = [:]) {
        self.stored = stored
        self.readKeys = readKeys
        self.overlay = inherited
    }

    /// Runs one message's sagas and returns what they read and did. A message whose handlers throw leaves
    /// no trace for the messages after it.
    func speculate(_ body: (SpeculativeSagaStates) throws -> [SagaInvocation]) -> SagaSpeculation {
        reads = []
        writes = []
        undo = []
        do {
            let invocations = try body(self)
            for write in writes {
                switch write {
                case .insert(let saga), .update(let saga, _): writtenStates[saga.key] = .some(saga)
                case .delete(let key, _): writtenStates[key] = .some(nil)
                }
            }
            return SagaSpeculation(outcome: .ran(invocations, writes: writes), reads: reads)
        } catch {
            for change in undo.reversed() { overlay[change.key] = change.previous }
            return SagaSpeculation(outcome: .failed(error), reads: reads)
        }
    }

    private func current(_ key: SagaInstanceKey) throws -> StoredSaga? {
        if let written = overlay[key] { return written }
        guard readKeys.contains(key) else { throw UnreadSagaState(key: key) }
        return stored[key]
    }

    private func set(_ key: SagaInstanceKey, _ saga: StoredSaga?) {
        undo.append((key, overlay[key]))
        overlay[key] = .some(saga)
    }

    func loadSaga(_ key: SagaInstanceKey) throws -> StoredSaga? {
        let saga = try current(key)
        if !reads.contains(where: { $0.key == key }) { reads.append((key, saga.map(SagaIdentity.init))) }
        return saga
    }

    func insertSaga(_ saga: StoredSaga) throws {
        guard try current(saga.key) == nil else {
            throw SagaStoreError.conflict(sagaType: saga.key.sagaType, correlationId: saga.key.correlationId)
        }
        writes.append(.insert(saga))
        set(saga.key, saga)
    }

    func updateSaga(_ saga: StoredSaga, expectedVersion: Int) throws {
        guard try current(saga.key)?.version == expectedVersion else {
            throw SagaStoreError.conflict(sagaType: saga.key.sagaType, correlationId: saga.key.correlationId)
        }
        writes.append(.update(saga, expectedVersion: expectedVersion))
        set(saga.key, saga)
    }

    func deleteSaga(_ key: SagaInstanceKey, expectedVersion: Int) throws {
        guard try current(key)?.version == expectedVersion else {
            throw SagaStoreError.conflict(sagaType: key.sagaType, correlationId: key.correlationId)
        }
        writes.append(.delete(key, expectedVersion: expectedVersion))
        set(key, nil)
    }
}
