import BrokerTestSupport
import Foundation
import SagaStore
import Testing

/// `sagas list|show` pointed at the store of an endpoint that is not `run` (no broker needed).
@Suite("saga-endpoint sagas on another endpoint's store", .timeLimit(.minutes(2)))
struct CLISagasOtherStoreTests {
    func sagas(_ arguments: [String]) async throws -> CLIRun {
        let process = try ChildProcess(executable: CLIProcessTests.executablePath,
                                       arguments: ["sagas"] + arguments + ["--log-level", "warning"])
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
    }

    // Found by an operations review: `sagas list --database bank.sqlite` (or a SAGA_DATABASE meant for the
    // bank) printed nothing, exit 0, the same as "no transfer in flight": nothing said the file was the
    // bank's, which hosts no sagas.
    @Test("list and show on the bank's store say whose store it is")
    func bankStoreIsNamed() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bank-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try SagaStore(path: path)
        _ = try store.claim(forEndpoint: "bank")
        store.close()

        let list = try await sagas(["list", "--database", path])
        #expect(list.status == 0 && list.output.isEmpty, "\(list)")
        #expect(list.errorOutput.contains("\(path) is the store of endpoint 'bank', not of `run` (endpoint 'transfers')"), "\(list)")
        let show = try await sagas(["show", "TransferSaga", "t-1", "--database", path])
        #expect(show.status == 1, "\(show)")
        #expect(show.errorOutput.contains("the store of endpoint 'bank'"), "\(show)")
    }

    @Test("list on run's own store with nothing live says nothing")
    func runStoreIsQuiet() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("saga-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try SagaStore(path: path)
        _ = try store.claim(forEndpoint: "transfers")
        store.close()
        let list = try await sagas(["list", "--database", path])
        #expect(list.status == 0 && list.output.isEmpty && list.errorOutput.isEmpty, "\(list)")
    }
}
