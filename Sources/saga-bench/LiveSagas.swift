// Pre-populates a store with live transfer sagas, as an endpoint would leave them after starting that many
// transfers the bank has not answered yet: one `sagas` row (TransferSaga in step `debiting`) and one pending
// BankReplyTimeout per saga. One transaction with the store's own (prepared, cached) INSERTs, so a million
// rows take seconds, not the hours one commit each would.
import Foundation
import Logging
import MoneyTransfer
import SagaStore
import Sagas

enum LiveSagas {
    static func populate(path: String, count: Int) throws {
        let logger = Logger.quiet("saga-bench-populate")
        let store = try SagaStore(path: path, logger: logger)
        defer { store.close() }
        // Random keys into six indexes: with SQLite's default 2 MB page cache nearly every insert would
        // spill pages to the WAL. This connection only; the endpoint later opens the file with its own.
        try store.connection.execute("PRAGMA cache_size = -262144")
        let now = Date()
        // Far in the future: the measurement is about a big store, not about timeouts firing.
        let dueAt = now.addingTimeInterval(7 * 24 * 3600)
        let timeoutBody = try MessageCoding.encode(BankReplyTimeout(step: .debiting, attempt: 1))
        // TransferSaga's memberwise initializer is internal to MoneyTransfer, so the state is written as the
        // JSON it encodes to (sorted keys, as MessageCoding writes it) and checked to decode below.
        func state(_ id: String, _ index: Int) -> Data {
            Data(("{\"amount\":\(100 + index % 900),\"attempts\":1,\"commandMessageId\":\"\(UUID().uuidString.lowercased())\","
                + "\"debitFee\":0,\"fromAccount\":\"acct-\(index % 1000)\",\"stalled\":false,\"step\":\"debiting\","
                + "\"toAccount\":\"acct-\((index + 1) % 1000)\",\"transferId\":\"\(id)\"}").utf8)
        }
        _ = try MessageCoding.decode(TransferSaga.self, from: state("check", 0), messageType: TransferSaga.sagaType)

        try store.transaction { store in
            for index in 0..<count {
                let id = UUID().uuidString.lowercased()
                try store.insertSaga(SagaRecord(
                    sagaType: TransferSaga.sagaType, correlationId: id, sagaId: UUID().uuidString.lowercased(),
                    state: state(id, index), originatorReplyTo: MoneyTransferApp.transfersQueue, createdAt: now))
                try store.scheduleTimeout(TimeoutRecord(
                    sagaType: TransferSaga.sagaType, correlationId: id, dueAt: dueAt,
                    messageType: BankReplyTimeout.messageType, body: timeoutBody, createdAt: now))
            }
        }
    }

    /// Takes the store back to what `populate` left: the sagas and timeouts a run started, and every
    /// inbox, outbox, delivery and failure row, are deleted and the WAL is emptied. Without it each round
    /// of the scale case met the rows of the rounds before (the inbox and outbox grow with every run, the
    /// deduplication window being a week) while the empty store starts fresh every run.
    static func reset(path: String) throws {
        let logger = Logger.quiet("saga-bench-reset")
        let connection = try SQLiteConnection(path: path, logger: logger)
        defer { connection.close() }
        // `populate` writes every row with one timestamp, the earliest in the store.
        try connection.transaction {
            try connection.execute("DELETE FROM sagas WHERE created_at > (SELECT min(created_at) FROM sagas)")
            try connection.execute("DELETE FROM timeouts WHERE created_at > (SELECT min(created_at) FROM timeouts)")
            for table in ["inbox", "outbox", "deliveries", "failures"] { try connection.execute("DELETE FROM \(table)") }
        }
        try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Rows in `table` of the store at `path`, read through a connection of its own (WAL: readers do not
    /// block the endpoint's writer).
    static func count(_ table: String, path: String) throws -> Int {
        let logger = Logger.quiet("saga-bench-count")
        let connection = try SQLiteConnection(path: path, logger: logger)
        defer { connection.close() }
        return Int(try connection.query("SELECT count(*) FROM \(table)").first?[0].integerValue ?? -1)
    }
}
