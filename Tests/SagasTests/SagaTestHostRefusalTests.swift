import Foundation
import Sagas
import SagaTesting
import Testing

@Suite("SagaTestHost refuses what the endpoint refuses")
struct SagaTestHostRefusalTests {
    /// Failed before: the second message with an empty id was taken for a duplicate of the first.
    @Test("a message with an empty id is refused, not deduplicated against the next one")
    func emptyMessageId() async throws {
        let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")
        await #expect(throws: SagaTestHostError.missingMessageId(type: "OrderPlaced")) {
            try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "")
        }
        #expect(host.liveSagaCount == 0)
        let next = try await host.deliver(OrderPlaced(orderId: "o-2", amount: 5), messageId: "m-2")
        #expect(next.outcome(of: OrderSaga.self) == .started)
    }

    /// Failed before: consumed as handled, with no saga invocation and an inbox row.
    @Test("a saga's timeout type that did not come from its timeout has no handler")
    func timeoutTypeFromOutside() async throws {
        let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        await #expect(throws: SagaError.noHandler(type: PaymentReminder.messageType)) {
            try await host.deliver(PaymentReminder(attempt: 1), messageId: "spoofed", correlationId: "o-1")
        }
        // The saga's own timeout still reaches it.
        let fired = try await host.advanceTime(by: .seconds(30))
        #expect(!fired.deliveries.isEmpty)
    }

    /// Failed before (twice). First the timeout was consumed as handled with no effect (a stateless handler
    /// of its type does not take timeouts, and the saga has no route for it); then `advanceTime` threw
    /// `noHandler` and left it pending, so every later advance threw too and the saga's other timeouts never
    /// fired. The endpoint moves such a due row to the error queue (`NoHandler`, see `KitParityTests`) and
    /// goes on: so does the kit.
    @Test("a timeout of a type its saga has no route for is dead-lettered when due, even if a stateless handler takes the type, and the advance goes on")
    func timeoutTypeTheSagaDoesNotRoute() async throws {
        var registry = HandlerRegistry()
        registry.register(Relay.self) { saga in
            saga.startedBy(Relay.Start.self, correlatedBy: \.id) { start, context in
                try context.requestTimeout(after: .seconds(5), Relay.Nudge(id: start.id))
                try context.requestTimeout(after: .seconds(8), Relay.Wake())
                return Relay(id: start.id)
            }
            saga.handlesTimeout(Relay.Wake.self) { relay, _, _ in relay.woken += 1 }
        }
        registry.handle(Relay.Nudge.self) { nudge, context in try context.reply(nudge) }
        let host = SagaTestHost(registry: registry, endpointAddress: "relay")
        let started = try await host.deliver(Relay.Start(id: "r-1", blob: nil), messageId: "m-1")
        let nudge = try #require(started.timeoutsRequested.first)
        let reason = "NoHandler: no saga 'Relay' that handles 'test.RelayNudge' is registered"

        let advanced = try await host.advanceTime(by: .seconds(10))
        #expect(advanced.deliveries.map(\.disposition) == [.deadLettered(reason: reason), .handled])
        #expect(advanced.deliveries.first?.message == nudge.asIncomingMessage())
        #expect(advanced.deliveries.first?.deliveredAt == nudge.dueAt)
        advanced.expectNone(Relay.Nudge.self)
        #expect(host.deadLetters.map(\.message) == [nudge.asIncomingMessage()])
        #expect(host.deadLetters.map(\.reason) == [reason] && host.deadLetters.map(\.at) == [nudge.dueAt])
        #expect(host.state(of: Relay.self, correlationId: "r-1")?.woken == 1, "the advance went on to the next timeout")
        #expect(host.pendingTimeouts.isEmpty)
        #expect(try await host.advanceTime(by: .seconds(10)).deliveries.isEmpty)
        // Not in the inbox (a replay from the error queue would be processed), as on the endpoint.
        #expect(!host.persistence.hasProcessed(messageId: nudge.timeoutId))
    }

    /// Failed before: the kit showed the command sent, while the endpoint refuses it before storing it
    /// and moves the incoming message to the error queue.
    @Test("a handler that emits a message AMQP cannot carry fails the delivery, rolled back")
    func outgoingMessageAMQPCannotCarry() async throws {
        let longQueue = String(repeating: "q", count: 256)
        var registry = HandlerRegistry()
        registry.register(Relay.self) { saga in
            saga.startedBy(Relay.Start.self, correlatedBy: \.id) { start, context in
                try context.send(Relay.Start(id: start.id, blob: nil), to: start.blob == nil ? longQueue : "out",
                                 headers: start.blob.map { ["blob": $0] } ?? [:])
                return Relay(id: start.id)
            }
        }
        let host = SagaTestHost(registry: registry, endpointAddress: "relay")
        await #expect(throws: SagaTestHostError.self) {
            try await host.deliver(Relay.Start(id: "r-1", blob: nil), messageId: "m-1")
        }
        #expect(host.liveSagaCount == 0)
        #expect(host.history.isEmpty)
        // Headers larger than a frame (128 KiB by default).
        await #expect(throws: SagaTestHostError.self) {
            try await host.deliver(Relay.Start(id: "r-2", blob: String(repeating: "b", count: 140_000)), messageId: "m-2")
        }
        #expect(host.liveSagaCount == 0)
        // The same message id again is not a duplicate: nothing of it was recorded.
        let small = try await host.deliver(Relay.Start(id: "r-2", blob: "small"), messageId: "m-2")
        #expect(small.outcome(of: Relay.self) == .started)
    }

    // As the endpoint: RabbitMQ returns a mandatory publish to its direct reply-to, a malformed address
    // closes the publishing connection (RabbitMQ 3.10), and as a reply_to it closes the publishing channel
    // (406) unless that channel consumes it.
    @Test("a message to RabbitMQ's direct reply-to, or naming it as its reply_to, fails the delivery, rolled back",
          arguments: [("amq.rabbitmq.reply-to.g2gD.xyz", nil), ("backend", "amq.rabbitmq.reply-to")])
    func directReplyTo(_ queue: String, _ replyTo: String?) async throws {
        var registry = HandlerRegistry()
        registry.register(Relay.self) { saga in
            saga.startedBy(Relay.Start.self, correlatedBy: \.id) { start, context in
                try context.send(Relay.Start(id: start.id, blob: nil), to: queue, replyTo: replyTo)
                return Relay(id: start.id)
            }
        }
        let host = SagaTestHost(registry: registry, endpointAddress: "relay")
        let error = await #expect(throws: SagaTestHostError.self) {
            try await host.deliver(Relay.Start(id: "r-1", blob: nil), messageId: "m-1")
        }
        #expect("\(error.map { $0 } as Any)".contains("direct reply-to"))
        #expect(host.liveSagaCount == 0)
    }

    // Failed before: the kit accepted a command to an empty queue name, which the endpoint cannot route
    // (it now sends the incoming message to the error queue, `InvalidOutgoingMessage`).
    @Test("a command to an empty queue name fails the delivery, rolled back")
    func commandToNoQueue() async throws {
        var registry = HandlerRegistry()
        registry.register(Relay.self) { saga in
            saga.startedBy(Relay.Start.self, correlatedBy: \.id) { start, context in
                try context.send(Relay.Start(id: start.id, blob: nil), to: start.blob ?? "")
                return Relay(id: start.id)
            }
        }
        let host = SagaTestHost(registry: registry, endpointAddress: "relay")
        let error = await #expect(throws: SagaTestHostError.self) {
            try await host.deliver(Relay.Start(id: "r-1", blob: nil), messageId: "m-1")
        }
        #expect("\(error.map { $0 } as Any)".contains("no queue"))
        #expect(host.liveSagaCount == 0)
        let routed = try await host.deliver(Relay.Start(id: "r-1", blob: "out"), messageId: "m-1")
        #expect(routed.outcome(of: Relay.self) == .started)
    }
}

struct Relay: Saga {
    var id: String
    var woken = 0
    struct Start: Message { static let messageType = "test.RelayStart"; var id: String; var blob: String? }
    struct Nudge: Message { static let messageType = "test.RelayNudge"; var id: String }
    struct Wake: Message { static let messageType = "test.RelayWake" }
    static func define(_ saga: inout SagaDefinition<Relay>) {}
}
