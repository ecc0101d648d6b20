import BrokerTestSupport
import Foundation
import Logging
import SagaStore
import Sagas
import Testing
@testable import SagaEndpoint

/// The endpoint's SQLite stores open on their own threads; a store that cannot be opened must not leave
/// its thread behind (an actor whose init throws never runs its `deinit`, which ends the thread).
@Suite("Opening the endpoint's stores")
struct StoreOpeningTests {
    @Test("a store that cannot be opened leaves no thread behind", .enabled(if: FileManager.default.fileExists(atPath: "/proc/self/task")))
    func failedOpenEndsItsThread() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("too-new-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        // A database written by a newer version: every store refuses it.
        try SQLiteConnection(path: path).execute("PRAGMA user_version = 9999")
        // A name of its own, so that stores other tests open meanwhile do not count.
        let name = "open-\(UInt16.random(in: 1000...9999))"
        let dispatcher = MessageDispatcher(registry: OrderSaga.registry(), endpointAddress: OrderSaga.queue)
        for _ in 0..<5 {
            await #expect(throws: SagaStoreError.self) {
                try await StoreWorker.open(path: path, durable: true, dispatcher: dispatcher,
                                           logger: Logger(label: "test"), threadName: name)
            }
            await #expect(throws: SagaStoreError.self) {
                try await SagaStateReader.open(path: path, logger: Logger(label: "test"), threadName: name)
            }
            await #expect(throws: SagaStoreError.self) {
                try await BacklogReader.open(path: path, busyTimeout: .seconds(1), logger: Logger(label: "test"),
                                             threadName: name)
            }
        }
        try await waitUntil(timeout: .seconds(10)) { Self.threads(named: name) == 0 }
        #expect(Self.threads(named: name) == 0)
    }

    private static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }
}
