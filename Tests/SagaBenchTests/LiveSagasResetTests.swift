import Foundation
import MoneyTransfer
@testable import saga_bench
import SagaStore
import Testing

/// The scale case's store reset: each run must start from the store as `populate` left it, or the rounds
/// measure a store that grows from round to round.
@Suite("Bench store reset")
struct LiveSagasResetTests {
    @Test("reset removes what a run added and keeps every populated saga and timeout")
    func resetKeepsThePopulatedRows() throws {
        let (scratch, path) = try Self.populatedStore(sagas: 200)
        defer { scratch.remove() }
        let populated = try Self.sagaIds(path)

        try Self.runLikeAnEndpoint(path: path, transfers: 25)
        #expect(try LiveSagas.count("sagas", path: path) == 225)
        #expect(try LiveSagas.count("timeouts", path: path) == 225)
        #expect(try LiveSagas.count("inbox", path: path) == 25)
        #expect(try LiveSagas.count("outbox", path: path) == 25)

        try LiveSagas.reset(path: path)
        #expect(try Self.sagaIds(path) == populated)
        #expect(try LiveSagas.count("timeouts", path: path) == 200)
        for table in ["inbox", "outbox", "deliveries", "failures"] {
            #expect(try LiveSagas.count(table, path: path) == 0, "\(table) emptied")
        }
        let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        #expect(wal == 0, "the WAL is checkpointed and truncated")
    }

    @Test("a reset of a store no run has touched changes nothing")
    func resetOfAnUntouchedStore() throws {
        let (scratch, path) = try Self.populatedStore(sagas: 50)
        defer { scratch.remove() }
        let populated = try Self.sagaIds(path)
        try LiveSagas.reset(path: path)
        try LiveSagas.reset(path: path)
        #expect(try Self.sagaIds(path) == populated)
        #expect(try LiveSagas.count("timeouts", path: path) == 50)
    }

    /// What an endpoint run leaves: new sagas with their timeouts (created after the populated ones), and an
    /// inbox and an outbox row per message.
    static func runLikeAnEndpoint(path: String, transfers: Int) throws {
        let store = try SagaStore(path: path)
        defer { store.close() }
        let later = Date().addingTimeInterval(1)
        try store.transaction { store in
            for index in 0..<transfers {
                let id = "run-\(index)"
                try store.insertSaga(SagaRecord(sagaType: TransferSaga.sagaType, correlationId: id,
                                                state: Data("{}".utf8), createdAt: later))
                try store.scheduleTimeout(TimeoutRecord(
                    sagaType: TransferSaga.sagaType, correlationId: id, dueAt: later.addingTimeInterval(600),
                    messageType: BankReplyTimeout.messageType, body: Data("{}".utf8), createdAt: later))
                try store.recordInbox(messageId: "req-\(index)", queue: "transfers", at: later)
                _ = try store.appendOutbox([OutboxRecord(
                    messageId: "out-\(index)", incomingMessageId: "req-\(index)", position: 0, exchange: "",
                    routingKey: "bank", messageType: "DebitAccount", body: Data("{}".utf8), createdAt: later)])
            }
        }
    }

    /// A store as `LiveSagas.populate` leaves it, in a scratch directory of its own.
    static func populatedStore(sagas: Int) throws -> (ScratchDirectory, path: String) {
        let scratch = try ScratchDirectory()
        let path = scratch.path("live.sqlite")
        do {
            try LiveSagas.populate(path: path, count: sagas)
        } catch {
            scratch.remove()
            throw error
        }
        return (scratch, path)
    }

    static func sagaIds(_ path: String) throws -> Set<String> {
        let store = try SagaStore(path: path)
        defer { store.close() }
        return Set(try store.listSagas(type: TransferSaga.sagaType).map(\.correlationId))
    }
}
