import Foundation
import Logging
@testable import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// What the due-timeout poller reads from the store at each poll.
@Suite("Due-timeout poll")
struct DueTimeoutPollTests {
    // New API: the poller read the 500 earliest due rows in full at every poll (five a second), bodies
    // included, also those it had handed on already and only then left them out: with a backlog of parked
    // retries of large messages, up to 500 MiB a poll on the writer's thread.
    @Test("rows in flight are left out before any row is read in full; a row gone or parked again meanwhile is not handed on")
    func inFlightRowsAreSkipped() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("due-poll-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        // Rows written on a connection of the test's own (a short, local file: no need for a thread).
        let direct = try SagaStore(path: path)
        defer { direct.close() }
        let past = Date().addingTimeInterval(-60)
        for index in 0..<6 {
            try direct.scheduleTimeout(TimeoutRecord(
                timeoutId: "t\(index)", sagaType: "", correlationId: "", dueAt: past.addingTimeInterval(Double(index)),
                messageType: "Retry", body: Data(repeating: 0x61, count: 1000), createdAt: past))
        }
        let dispatcher = MessageDispatcher(registry: HandlerRegistry(), endpointAddress: "q")
        let store = try await StoreWorker.open(path: path, durable: false, dispatcher: dispatcher,
                                               logger: Logger(label: "test"), threadName: "due-poll-test")
        let inFlight = InFlightSet()
        let first = try await store.dueTimeouts(now: Date(), limit: 3, skipping: inFlight)
        #expect(first.map(\.timeoutId) == ["t0", "t1", "t2"])
        inFlight.insert(first.map(\.timeoutId))
        let second = try await store.dueTimeouts(now: Date(), limit: 3, skipping: inFlight)
        #expect(second.map(\.timeoutId) == ["t3", "t4", "t5"])
        #expect(try await store.dueTimeouts(now: Date(), limit: 0, skipping: inFlight).isEmpty)
        // t0's batch ended (its row deleted) and it left the set: not handed on again.
        _ = try direct.deleteTimeout(first[0].key)
        inFlight.remove(["t0"])
        inFlight.insert(second.map(\.timeoutId))
        #expect(try await store.dueTimeouts(now: Date(), limit: 3, skipping: inFlight).isEmpty)
        // t5's handler failed and its batch parked it again under its id, due in a minute (the new row takes
        // the old one's number, the highest): once t5 left the set it is not handed on before it is due.
        var parked = second[2]
        _ = try direct.deleteTimeout(parked.key)
        parked.dueAt = Date().addingTimeInterval(60)
        try direct.scheduleTimeout(parked)
        inFlight.remove(["t5"])
        #expect(try await store.dueTimeouts(now: Date(), limit: 3, skipping: inFlight).isEmpty)
        await store.close()
    }
}
