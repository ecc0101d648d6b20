import Foundation
import Logging
import SagaStore
import Sagas
import Testing
@testable import SagaEndpoint

/// Random sequences of batches (starts with and without a timeout, payments, completions, status requests
/// answered by `whenNotFound`, timeouts with and without their due row, not-found policies, malformed
/// bodies, duplicate ids) run twice: every handler inside the transaction in order, and pipelined as the
/// endpoint does under load (a batch's handlers run ahead on the reader and on the states the batch before
/// wrote, before or after that batch commits; now and then a second process commits in between, and a batch
/// fails as a whole and comes back at the end). The stores and results must be the same.
@Suite("Handlers ahead against handlers in the transaction, on random batches")
struct HandlersAheadDifferentialTests {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func path() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString).sqlite").path
    }

    static func snapshot(_ path: String) throws -> [String] {
        let store = try SagaStore(path: path)
        var out: [String] = []
        for row in try store.connection.query("SELECT saga_type, correlation_id, state, version FROM sagas ORDER BY 1, 2") {
            out.append("saga \(row[0]) \(row[1]) \(row[2]) v\(row[3])")
        }
        for row in try store.connection.query("SELECT message_id FROM inbox ORDER BY 1") {
            out.append("inbox \(row[0])")
        }
        for row in try store.connection.query(
            "SELECT message_id, incoming_message_id, position, routing_key, message_type, body FROM outbox ORDER BY 2, 3, 1") {
            out.append("outbox \(row[0]) \(row[1]) \(row[2]) \(row[3]) \(row[4]) \(String(decoding: row[5].blobValue ?? Data(), as: UTF8.self))")
        }
        for row in try store.connection.query(
            "SELECT timeout_id, saga_type, correlation_id, message_type, saga_seq IS NULL FROM timeouts ORDER BY 1") {
            out.append("timeout \(row[0]) \(row[1]) \(row[2]) \(row[3]) \(row[4])")
        }
        return out
    }

    static func describe(_ result: WorkResult) -> String {
        switch result {
        case .processed(let outbox, let invocations):
            "processed \(outbox.map(\.messageId)) \(invocations.map { "\($0.outcome)" }) t\(invocations.flatMap(\.timeouts).map(\.timeoutId))"
        case .duplicate: "duplicate"
        case .deferred: "deferred"
        case .withdrawn: "withdrawn"
        case .notFound(let policy, let saga): "notFound \(policy) \(saga)"
        case .failed(let error): "failed \(type(of: error))"
        }
    }

    static func randomItem(_ rng: inout Rng, ids: inout [String], counter: inout Int) throws -> WorkItem {
        // A duplicate of an earlier message id now and then.
        if !ids.isEmpty, rng.int(8) == 0 {
            return try itemFor(ids[rng.int(ids.count)])
        }
        let starts = ids.filter { $0.split(separator: "-")[1] == "0" }
        if !starts.isEmpty, rng.int(4) == 0 {
            // The due row of a reminder an earlier start asked for (withdrawn when it is gone).
            let source = starts[rng.int(starts.count)]
            let order = String(source.split(separator: "-")[2])
            let timeoutId = MessageIdentity.derive(from: source, handler: OrderSaga.sagaType, position: "t1")
            var item = try HandlersAheadTests.reminder(timeoutId, order: order)
            item.timeoutRow = TimeoutKey(sagaType: OrderSaga.sagaType, correlationId: order, timeoutId: timeoutId)
            return item
        }
        counter += 1
        let order = "o\(rng.int(3))"
        let kind = rng.int(8)
        let id = "m\(counter)-\(kind)-\(order)"
        ids.append(id)
        return try itemFor(id)
    }

    static func itemFor(_ id: String) throws -> WorkItem {
        let parts = id.split(separator: "-")
        let kind = Int(parts[1])!
        let order = String(parts[2])
        switch kind {
        case 0, 1: return try HandlersAheadTests.item(id, OrderSaga.Placed(orderId: order, remindAfterMs: kind == 0 ? 1000 : nil))
        case 2: return try HandlersAheadTests.item(id, OrderSaga.Paid(orderId: order))
        case 3: return try HandlersAheadTests.item(id, OrderSaga.Close(orderId: order))
        case 4: return try HandlersAheadTests.item(id, OrderSaga.StatusRequested(orderId: order))
        case 5: return try HandlersAheadTests.reminder(id, order: order)
        case 6: return try HandlersAheadTests.item(id, OrderSaga.Cancelled(orderId: order))
        default:
            var item = try HandlersAheadTests.item(id, OrderSaga.Placed(orderId: order, remindAfterMs: nil))
            item.incoming.body = Data("{".utf8)
            return item
        }
    }

    @Test("200 random batch sequences: same sagas, inbox, outbox, timeouts and results")
    func differential() async throws {
        for seed in 0..<200 {
            var rng = Rng(state: UInt64(seed))
            var ids: [String] = []
            var counter = 0
            var batches: [[WorkItem]] = []
            for _ in 0..<(2 + rng.int(4)) {
                var batch: [WorkItem] = []
                for _ in 0..<(1 + rng.int(5)) { batch.append(try Self.randomItem(&rng, ids: &ids, counter: &counter)) }
                batches.append(batch)
            }
            // Which batches fail as a whole (come back later, after all the others).
            let failing = Set(batches.indices.filter { _ in rng.int(5) == 0 })
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            let registry = OrderSaga.registry(earlyPayment: .retryLater(attempts: 3, delay: .seconds(1)))
            let dispatcher = MessageDispatcher(registry: registry, endpointAddress: OrderSaga.queue)
            let refPath = Self.path(), aheadPath = Self.path()
            defer {
                for p in [refPath, aheadPath] { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: p + s) } }
            }
            let logger = Logger(label: "probe")
            let ref = try await StoreWorker.open(path: refPath, durable: false, dispatcher: dispatcher, logger: logger)
            let worker = try await StoreWorker.open(path: aheadPath, durable: false, dispatcher: dispatcher, logger: logger)
            let reader = try await SagaStateReader.open(path: aheadPath, logger: logger)
            let ahead = HandlersAhead(dispatcher: dispatcher, reader: reader, timing: HandlerTiming(timer: nil))

            // Per batch: whether the next batch's states are read after this one commits, and whether
            // another process commits a batch of its own right after this one.
            let readAfterCommit = batches.indices.map { _ in rng.int(2) == 0 }
            var others: [Int: [WorkItem]] = [:]
            for index in batches.indices where rng.int(3) == 0 {
                var batch: [WorkItem] = []
                for _ in 0..<(1 + rng.int(3)) { batch.append(try Self.randomItem(&rng, ids: &ids, counter: &counter)) }
                others[index] = batch
            }
            let other = try await StoreWorker.open(path: aheadPath, durable: false, dispatcher: dispatcher, logger: logger)
            var refResults: [String] = []
            let order = batches.indices.filter { !failing.contains($0) } + batches.indices.filter { failing.contains($0) }
            for index in order {
                refResults += await ref.processBatch(batches[index], now: now).map(Self.describe)
                if !failing.contains(index), let extra = others[index] {
                    refResults += await ref.processBatch(extra, now: now).map(Self.describe)
                }
            }
            var aheadResults: [Int: [String]] = [:]
            var pending = await ahead.run(batches[0], now: now)
            for index in batches.indices {
                var next: (items: [WorkItem], written: [SagaInstanceKey: StoredSaga?])?
                if index + 1 < batches.count, !readAfterCommit[index] {
                    next = await ahead.run(batches[index + 1], after: pending.written, now: now)
                }
                if !failing.contains(index) {
                    aheadResults[index] = await worker.processBatch(pending.items, now: now).map(Self.describe)
                    if let extra = others[index] {
                        aheadResults[index]! += await other.processBatch(extra, now: now).map(Self.describe)
                    }
                }
                if index + 1 < batches.count, readAfterCommit[index] {
                    next = await ahead.run(batches[index + 1], after: pending.written, now: now)
                }
                if let next { pending = next }
            }
            await other.close()
            var aheadOrdered: [String] = []
            for index in batches.indices where !failing.contains(index) { aheadOrdered += aheadResults[index]! }
            for index in batches.indices where failing.contains(index) {
                aheadOrdered += await worker.processBatch(batches[index], now: now).map(Self.describe)
            }
            let same = try Self.snapshot(refPath) == Self.snapshot(aheadPath) && refResults == aheadOrdered
            if !same {
                Issue.record("seed \(seed): batches \(batches.map { $0.map(\.incoming.messageId) }) failing \(failing)\nref \(refResults)\nahead \(aheadOrdered)\nref \(try Self.snapshot(refPath))\nahead \(try Self.snapshot(aheadPath))")
                break
            }
            await reader.close()
            await ref.close()
            await worker.close()
        }
    }
}
