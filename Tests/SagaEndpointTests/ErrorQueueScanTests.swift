import AMQPTransport
import BrokerTestSupport
import Foundation
@testable import SagaEndpoint
import Testing

// The pass behind list, show and replay, with a small window so that going from one consumer's window to
// the next takes a few hundred messages instead of 65,536.
@Suite("Error queue scan: windows, hand-back, incomplete passes", .timeLimit(.minutes(6)))
struct ErrorQueueScanTests {
    @Test("a pass goes on with a new consumer when one window is full of kept messages, and hands them all back")
    func windowsFollowEachOther() async throws {
        let harness = try await EndpointHarness.make()
        let ids = (0..<250).map { "w-\($0)" }
        try await harness.park(ids, in: "transfers.error")
        let scan = ErrorQueueScan(connection: harness.connection, queue: "transfers.error", window: 100)

        var seen: [String] = []
        let outcome = try await scan.run { delivery in
            seen.append(delivery.properties.messageId ?? "")
            return .keep
        }

        #expect(seen == ids)
        #expect(outcome.queued == 250 && outcome.visited == 250 && outcome.isComplete)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 250 }
        await harness.tearDown()
    }

    @Test("removed messages are acked at once; one nack per window returns exactly the kept ones")
    func removedStayRemovedKeptComeBack() async throws {
        let harness = try await EndpointHarness.make()
        let ids = (0..<35).map { "k-\($0)" }
        try await harness.park(ids, in: "transfers.error")
        let scan = ErrorQueueScan(connection: harness.connection, queue: "transfers.error", window: 10)

        let outcome = try await scan.run { delivery in
            Int(delivery.properties.messageId?.dropFirst(2) ?? "")! % 3 == 0 ? .remove : .keep
        }

        #expect(outcome.visited == 35)
        let kept = ids.enumerated().filter { $0.offset % 3 != 0 }.map(\.element)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == kept.count }
        let left = try await ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error").list()
        #expect(left.map(\.messageId).sorted() == kept.sorted())
        await harness.tearDown()
    }

    @Test("a replay that fails (no x-original-queue) leaves that message in the queue, not unacknowledged")
    func aFailedReplayHandsTheMessageBack() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park(["n-0"], in: "transfers.error")
        try await harness.sendRaw(Data("{}".utf8), properties: BasicProperties(
            headers: ["x-error-reason": "parked"], deliveryMode: .persistent, messageId: "n-1", type: "X"),
            to: "transfers.error")
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")

        await #expect(throws: ErrorQueueReplayFailure.self) { try await admin.replay(messageId: "n-1") }

        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == 2 }
        await harness.tearDown()
    }

    @Test("a search that sees fewer messages than were counted reports how many it saw instead of 'absent'")
    func anIncompleteSearchSaysSo() async throws {
        let harness = try await EndpointHarness.make()
        // With a single active consumer that holds its one prefetched message, the others stay counted
        // but are delivered to nobody else: the search's consumer gets nothing.
        let queue = "held.error"
        try await harness.connection.declareQueue(QueueDeclaration(name: queue, arguments: ["x-single-active-consumer": true]))
        try await harness.park(["h-0", "h-1", "h-2"], in: queue)
        let holder = try await harness.connection.consume(queue: queue, prefetch: 1)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth(queue) == 2 }
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: queue)

        let error = try await #require(throws: ErrorQueueScanIncomplete.self) {
            try await admin.replay(messageId: "h-2")
        }

        #expect(error.scanned == 0 && error.queued == 2 && error.otherConsumers == 1)
        #expect(error.description.contains("not among the first 0 of the 2 messages held.error held"))
        try await holder.cancel()
        await harness.tearDown()
    }
}
