import Foundation
import SagaTesting
import Sagas
import Testing
@testable import SagaEndpoint

/// The endpoint refuses a body over `maxBodyBytes` (1 MiB by default) before any handler runs; a saga
/// tested with `SagaTestHost` must find that out in its test, not in production.
@Suite("SagaTestHost: the endpoint's body limit", .timeLimit(.minutes(3)))
struct KitBodyLimitTests {
    /// A `diff.Step` for instance "b" whose body is `bytes` long (the padding is a field the saga ignores).
    static func step(bytes: Int, id: String) -> DiffStep {
        let head = #"{"id":"b","n":1,"pad":""#, tail = #""}"#
        let pad = String(repeating: "x", count: bytes - head.utf8.count - tail.utf8.count)
        return .raw(type: DiffSaga.Step.messageType, body: head + pad + tail, id: id)
    }

    // Failed before: the kit handled the oversized message (the saga's total went up and it sent its
    // command) while the endpoint moved it to its error queue as BodyTooLarge, unread.
    @Test("a body one byte over the limit is refused by both; one at the limit is handled by both")
    func bodyLimit() async throws {
        try await KitEndpointDifferentialTests.differential([
            .message(DiffSaga.Open(id: "b", note: "b"), id: "open-b"),
            Self.step(bytes: 1 << 20, id: "at-limit"),
            Self.step(bytes: (1 << 20) + 1, id: "over-limit"),
        ])
    }

    @Test("the kit's limit follows maxBodyBytes; a timeout the store hands over is not limited")
    func configurableLimit() async throws {
        let host = SagaTestHost(registry: DiffSaga.registry(), endpointAddress: DiffSaga.queue)
        host.maxBodyBytes = 100
        try await host.deliver(DiffSaga.Open(id: "b", note: "b"), messageId: "open-b")
        guard case .deliver(let big) = Self.step(bytes: 101, id: "big") else { return }
        await #expect(throws: SagaTestHostError.bodyTooLarge(messageId: "big", type: DiffSaga.Step.messageType,
                                                             bytes: 101, limit: 100)) {
            try await host.deliver(big)
        }
        #expect(host.state(of: DiffSaga.self, correlationId: "b")?.total == 0)
        // The store hands a timeout over whatever its size: it never went through a queue.
        let ping = TimeoutRequest(timeoutId: "ping-big", saga: SagaInstanceKey(sagaType: DiffSaga.sagaType, correlationId: "b"),
                                  dueAt: host.now, type: DiffSaga.Ping.messageType,
                                  body: Data((#"{"n":7,"pad":""# + String(repeating: "x", count: 200) + #""}"#).utf8))
        let fired = try await host.deliver(ping.asIncomingMessage())
        #expect(fired.disposition == .handled)
    }
}
