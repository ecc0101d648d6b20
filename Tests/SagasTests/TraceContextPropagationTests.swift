import Foundation
import Sagas
import SagaTesting
import Testing

@Suite("Trace context propagation")
struct TraceContextPropagationTests {
    struct Ping: Message { static let messageType = "Ping"; var id: String }
    struct Pong: Message { static let messageType = "Pong"; var id: String }

    struct PingSaga: Saga {
        var id: String
        static func define(_ saga: inout SagaDefinition<PingSaga>) {
            saga.startedBy(Ping.self, correlatedBy: \.id) { ping, context in
                try context.send(Pong(id: ping.id), to: "pongs")
                try context.publish(Pong(id: ping.id), to: "events", headers: ["traceparent": "explicit"])
                return PingSaga(id: ping.id)
            }
        }
    }

    @Test("traceparent and tracestate of the incoming message are carried into emitted messages")
    func traceHeadersFollowTheMessage() async throws {
        let host = SagaTestHost(PingSaga.self)
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let result = try await host.deliver(Ping(id: "p1"), headers: ["traceparent": traceparent, "tracestate": "x=1", "other": "no"])
        let sent = try #require(result.sent.first)
        #expect(sent.headers["traceparent"] == traceparent)
        #expect(sent.headers["tracestate"] == "x=1")
        #expect(sent.headers["other"] == nil)
        // A handler that sets the header itself wins.
        #expect(result.published.first?.headers["traceparent"] == "explicit")
    }
}

@Suite("Deterministic outgoing message ids")
struct MessageIdentityTests {
    @Test("the same inputs give the same UUID-shaped id; any change gives another")
    func deterministic() {
        let id = MessageIdentity.derive(from: "m-1", handler: "TransferSaga", position: "1")
        #expect(id == MessageIdentity.derive(from: "m-1", handler: "TransferSaga", position: "1"))
        #expect(UUID(uuidString: id) != nil)
        #expect(id != MessageIdentity.derive(from: "m-1", handler: "TransferSaga", position: "2"))
        #expect(id != MessageIdentity.derive(from: "m-2", handler: "TransferSaga", position: "1"))
        #expect(id != MessageIdentity.derive(from: "m-1", handler: "PayoutSaga", position: "1"))
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        #expect(MessageIdentity.derive(from: "ab", handler: "c", position: "1")
            != MessageIdentity.derive(from: "a", handler: "bc", position: "1"))
    }

    // Regression: ids were "<incoming id>/<handler>/<n>", so they grew with every hop of a chain
    // (a TransferCompleted id held the request id, the debit id and the credit id).
    @Test("ids do not grow along a chain of messages")
    func constantLength() {
        var id = "request-1"
        for hop in 0..<10 { id = MessageIdentity.derive(from: id, handler: "TransferSaga", position: "\(hop)") }
        #expect(id.count == 36)
    }
}
