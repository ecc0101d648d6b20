import Foundation
import Sagas
import Testing
@testable import SagaEndpoint

@Suite("StatelessResults: a stateless handler's result shared by copies in flight")
struct StatelessResultsTests {
    private func incoming(_ id: String, body: String) -> IncomingMessage {
        IncomingMessage(messageId: id, type: "test.Ping", body: Data(body.utf8), queue: "pings")
    }

    private func outgoing(_ id: String) -> [OutgoingMessage] {
        [OutgoingMessage(messageId: id, kind: .send, type: "test.Pong", body: Data(), exchange: "", routingKey: "pongs")]
    }

    @Test("a copy with the same id and body takes the first copy's result until that batch forgets it")
    func sharedUntilForgotten() {
        let results = StatelessResults()
        #expect(results.record(outgoing("pong-1"), for: incoming("m1", body: "a")))
        #expect(results.outgoing(for: incoming("m1", body: "a"))?.map(\.messageId) == ["pong-1"])
        #expect(results.outgoing(for: incoming("m1", body: "other")) == nil, "another body runs its own handlers")
        results.forget(["m1"])
        #expect(results.outgoing(for: incoming("m1", body: "a")) == nil)
    }

    // A copy with another body records nothing over the first copy's entry, so its batch, ending first,
    // cannot forget the entry a third copy still needs.
    @Test("the first copy's entry stays until its own batch ends")
    func firstCopyKeepsTheEntry() {
        let results = StatelessResults()
        #expect(results.record(outgoing("pong-1"), for: incoming("m1", body: "a")))
        #expect(!results.record(outgoing("pong-1b"), for: incoming("m1", body: "b")))
        #expect(results.outgoing(for: incoming("m1", body: "a"))?.map(\.messageId) == ["pong-1"])
        #expect(results.count == 1)
    }
}
