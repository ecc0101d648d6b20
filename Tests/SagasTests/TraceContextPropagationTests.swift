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
