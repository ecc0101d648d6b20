import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

// An error queue longer than one prefetch window: a browse that holds every message it has looked at
// must still get past the first window (it used to stop at 1,000 and report the rest as absent).
@Suite("Error queue: show, replay and list past the first prefetch window", .timeLimit(.minutes(6)))
struct ErrorQueueLargeQueueTests {
    static let parked = 1_200

    static func id(_ index: Int) -> String { "m-" + String(format: "%04d", index) }

    @Test("show and replay find the last of 1,200 parked messages; list returns all of them")
    func theLastMessageIsFound() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.park((0..<Self.parked).map(Self.id), reason: { "reason \($0)" })
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "transfers.error")
        let last = Self.id(Self.parked - 1)

        // Back to back: each pass waits until what it handed back is counted again, so the next one
        // counts it too.
        #expect(try await admin.show(messageId: last)?.reason == "reason \(Self.parked - 1)")
        let listed = try await admin.list(limit: 5_000)
        #expect(listed.count == Self.parked)
        #expect(listed.last?.messageId == last)
        #expect(try await admin.replay(messageId: last))
        let replayed = try #require(try await harness.receive(from: "transfers", count: 1).first)
        #expect(replayed.properties.messageId == last)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("transfers.error") == Self.parked - 1 }
        await harness.tearDown()
    }
}
