import Foundation
import Logging
import SagaStore
import Testing
@testable import SagaEndpoint

/// The backlog gauges are counted on a connection of their own (not the SQLite thread's): it must see
/// what the endpoint's connection commits, also after it was opened.
@Suite("Backlog reader")
struct BacklogReaderTests {
    @Test func countsWhatTheWritersConnectionCommitted() async throws {
        let fixture = try await StoreWorkerFixture()
        defer { fixture.remove() }
        let reader = try await BacklogReader.open(path: fixture.path, busyTimeout: .seconds(5), logger: Logger(label: "test"))
        #expect(try await reader.backlog() == (outbox: 0, timeouts: 0))

        // `LedgerSaga.Open` starts a saga that emits one message and asks for one timeout.
        let results = await fixture.worker.processBatch([try StoreWorkerFixture.open("a", fail: false)], now: Date())
        guard case .processed(let outbox, _) = try #require(results.first) else {
            Issue.record("not processed: \(results)")
            return
        }
        let timeouts = try SagaStore(path: fixture.path, logger: Logger(label: "test")).timeoutCount()
        #expect(try await reader.backlog() == (outbox: outbox.count, timeouts: timeouts))
        #expect(outbox.count == 1 && timeouts == 1)

        await fixture.worker.markDispatched(outbox.compactMap(\.key), now: Date())
        #expect(try await reader.backlog() == (outbox: 0, timeouts: timeouts))
    }
}
