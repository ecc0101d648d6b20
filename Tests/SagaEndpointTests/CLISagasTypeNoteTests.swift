import BrokerTestSupport
import Foundation
import SagaStore
import Testing

/// `sagas list --type T` and `sagas show T ID` with a saga type that has no live saga.
@Suite("saga-endpoint sagas: a type with no live saga", .timeLimit(.minutes(4)))
struct CLISagasTypeNoteTests {
    // Found by a user trying the CLI on their own endpoint: `sagas list --type OrderFulfillment` (a typo of
    // OrderFulfilment) printed nothing and exited 0, as for a type whose sagas had all completed, and
    // `sagas show` said only that there was no such saga. Both now name the types that have live sagas.
    @Test("list notes on stderr that no saga of that type is live, naming the types that are; show adds it")
    func mistypedTypeIsNoted() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("types-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try SagaStore(path: path)
        for id in ["o-1", "o-2"] {
            try store.insertSaga(SagaRecord(sagaType: "OrderFulfilment", correlationId: id, state: Data("{}".utf8),
                                            createdAt: Date()))
        }
        store.close()

        let typo = try await sagas(["list", "--type", "OrderFulfillment", "--database", path])
        #expect(typo.status == 0 && typo.output.isEmpty, "\(typo)")
        #expect(typo.errorOutput.contains("note: in \(path): no saga of type 'OrderFulfillment' is live; the types "
            + "with live sagas: OrderFulfilment (2)"), "\(typo)")

        let right = try await sagas(["list", "--type", "OrderFulfilment", "--database", path])
        #expect(right.status == 0 && right.output.split(separator: "\n").count == 2, "\(right)")
        #expect(!right.errorOutput.contains("note:"), "\(right)")

        let shown = try await sagas(["show", "OrderFulfillment", "o-1", "--database", path])
        #expect(shown.status == 1, "\(shown)")
        #expect(shown.errorOutput.contains("no live saga OrderFulfillment with correlation id 'o-1' in \(path); "
            + "no saga of type 'OrderFulfillment' is live; the types with live sagas: OrderFulfilment (2)"), "\(shown)")

        let absent = try await sagas(["show", "OrderFulfilment", "o-9", "--database", path])
        #expect(absent.status == 1 && !absent.errorOutput.contains("the types with live sagas"), "\(absent)")
    }

    private func sagas(_ arguments: [String]) async throws -> CLIRun {
        let process = try ChildProcess(executable: CLIProcessTests.executablePath,
                                       arguments: ["sagas"] + arguments + ["--log-level", "warning"])
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(60)) }
        return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
    }
}
