import Foundation
import Sagas
import SagaTesting
import Testing

@Suite("SagaTestHost.deliverReply answers a sent command as its receiver would")
struct SagaTestHostReplyTests {
    let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")

    @Test("the reply carries the command's correlation id and comes from its reply_to queue")
    func replyFindsTheSagaByTheCommandsCorrelationId() async throws {
        let started = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        let charge = try #require(started.sent.first)

        // `ShipmentConfirmed` has no order id in its body: only the correlation id finds the saga.
        let shipped = try await host.deliverReply(ShipmentConfirmed(trackingNumber: "TN-1"), to: charge,
                                                  messageId: "reply-1")
        #expect(shipped.message.messageId == "reply-1")
        #expect(shipped.message.correlationId == "o-1")
        #expect(shipped.message.queue == "orders")
        #expect(shipped.message.replyTo == nil, "a reply is not answered")
        #expect(shipped.outcome(of: OrderSaga.self) == .completed)
        try shipped.expectPublished(OrderShipped.self)
        #expect(try await host.deliverReply(ShipmentConfirmed(trackingNumber: "TN-1"), to: charge,
                                            messageId: "reply-1").isDuplicate)
    }

    @Test("without a message id the host generates one, as deliver does")
    func generatedMessageId() async throws {
        let started = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        let reply = try await host.deliverReply(ShipmentConfirmed(trackingNumber: "TN-1"), to: try #require(started.sent.first))
        #expect(started.message.messageId == "msg-1" && reply.message.messageId == "msg-2")
    }

    @Test("the reply goes to the command's reply_to even when it names another queue of the endpoint")
    func replyToAnotherQueue() async throws {
        let command = OutgoingMessage(
            messageId: "c-1", kind: .send, type: "Lookup", body: Data("{}".utf8), exchange: "",
            routingKey: "directory", correlationId: nil, replyTo: "orders.lookups")
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        let reply = try await host.deliverReply(PaymentReceived(orderId: "o-1"), to: command)
        #expect(reply.message.queue == "orders.lookups")
        #expect(reply.message.correlationId == nil, "a command without a correlation id gets a reply without one")
        #expect(reply.outcome(of: OrderSaga.self, correlationId: "o-1") == .updated)
    }

    @Test("the command's trace headers are copied as a receiver copies them; the headers given are added and win")
    func traceHeadersFollow() async throws {
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let started = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5),
                                             headers: ["traceparent": traceparent, "tenant": "t-1"])
        let charge = try #require(started.sent.first)
        #expect(charge.headers["traceparent"] == traceparent)
        let reply = try await host.deliverReply(ShipmentConfirmed(trackingNumber: "TN-1"), to: charge,
                                                headers: ["tracestate": "k=v", "bank": "b-1"])
        #expect(reply.message.headers == ["traceparent": traceparent, "tracestate": "k=v", "bank": "b-1"])
    }

    @Test("an event or a reply has no reply_to: refused, nothing delivered")
    func messageWithoutReplyToIsRefused() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        let shipped = try await host.deliver(ShipmentConfirmed(trackingNumber: "TN-1"), correlationId: "o-1")
        let event = try #require(shipped.published.first)
        let pong = try #require(try await host.deliver(Ping(text: "a"), replyTo: "client").replied.first)
        let emptyReplyTo = OutgoingMessage(messageId: "c-1", kind: .send, type: "Lookup", body: Data("{}".utf8),
                                           exchange: "", routingKey: "directory", replyTo: "")
        let before = host.history.count
        for message in [event, pong, emptyReplyTo] {
            await #expect(throws: SagaTestHostError.commandWithoutReplyTo(messageId: message.messageId, type: message.type)) {
                try await host.deliverReply(Ping(text: "b"), to: message)
            }
        }
        #expect(host.history.count == before)
    }
}
