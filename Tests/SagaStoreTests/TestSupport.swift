import Foundation
import Logging
@testable import SagaStore

/// A database file unique to one test, so tests can run in parallel and never see each other's data.
struct TemporaryDatabase {
    let path: String

    init(_ label: String = #function) {
        let safe = label.filter { $0.isLetter || $0.isNumber }
        let name = "sagastore-\(safe)-\(UUID().uuidString).sqlite"
        path = FileManager.default.temporaryDirectory.appendingPathComponent(name).path
    }

    /// Removes the database and its WAL/shared-memory companions.
    func remove() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            try? FileManager.default.removeItem(atPath: path + suffix)
        }
    }
}

/// Tests only care about problems; migrations log at info on every fresh file.
let quietLogger: Logger = {
    var logger = Logger(label: "SagaStoreTests")
    logger.logLevel = .warning
    return logger
}()

func openStore(_ database: TemporaryDatabase, options: SagaStore.Options = .init()) throws -> SagaStore {
    try SagaStore(path: database.path, options: options, logger: quietLogger)
}

func openConnection(_ database: TemporaryDatabase, options: SQLiteConnection.Options = .init()) throws
    -> SQLiteConnection
{
    try SQLiteConnection(path: database.path, options: options, logger: quietLogger)
}

/// Fixed dates with exactly representable seconds, so a Date survives the Double round trip bit for bit.
func date(_ seconds: Double) -> Date { Date(timeIntervalSince1970: 1_700_000_000 + seconds) }

struct TestError: Error, Equatable {}

/// Runs blocking work on a fresh OS thread (not the cooperative pool) and awaits its result.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}
