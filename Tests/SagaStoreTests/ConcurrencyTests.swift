import Foundation
import Testing
@testable import SagaStore

@Suite struct ConcurrencyTests {
    private struct Counter: Codable { var count: Int }

    /// Two stores on the same file, each confined to its own OS thread, increment one saga's counter
    /// in IMMEDIATE read-modify-write transactions. Every increment must survive.
    @Test func twoWritersLoseNoUpdate() async throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        do {
            let store = try openStore(database)
            try store.insertSaga(SagaRecord(
                sagaType: "Counter", correlationId: "shared", state: try JSONEncoder().encode(Counter(count: 0)),
                createdAt: date(0)))
        }

        let path = database.path
        let increments = 500
        let worker: @Sendable () throws -> Int = {
            // Opened on this thread and never leaves it.
            let store = try SagaStore(path: path, logger: quietLogger)
            var retries = 0
            var done = 0
            while done < increments {
                do {
                    try store.transaction { tx in
                        let saga = try #require(try tx.loadSaga(type: "Counter", correlationId: "shared"))
                        var counter = try JSONDecoder().decode(Counter.self, from: saga.state)
                        counter.count += 1
                        try tx.updateSaga(
                            type: "Counter", correlationId: "shared", state: try JSONEncoder().encode(counter),
                            expectedVersion: saga.version, at: date(1))
                    }
                    done += 1
                } catch let error as SQLiteError where error.isRetryable {
                    retries += 1  // the busy timeout ran out while the other writer held the lock
                }
            }
            return retries
        }

        async let first = onThread(worker)
        async let second = onThread(worker)
        let retries = try await first + second

        let store = try openStore(database)
        let saga = try #require(try store.loadSaga(type: "Counter", correlationId: "shared"))
        #expect(try JSONDecoder().decode(Counter.self, from: saga.state).count == 2 * increments)
        #expect(saga.version == 1 + 2 * increments)
        #expect(retries >= 0)
    }
}
