import Foundation
import Sagas
import SagaTesting
import Testing

/// A shipment whose status can be asked for; for an unknown shipment the saga's `whenNotFound` answers.
private struct ShipmentSaga: Saga {
    static let sagaType = "Shipment"

    var shipmentId: String
    var delivered = false

    struct Dispatched: Message { var shipmentId: String }
    struct StatusAsked: Message { var shipmentId: String }
    struct Status: Message, Equatable { var shipmentId: String; var known: Bool }
    /// Asked for a shipment that may not exist; the not-found handler tries what it may not do.
    struct Misuse: Message { var shipmentId: String; var operation: String }
    struct Reminder: Message {}
    struct Unknown: Message { var shipmentId: String }

    static func define(_ saga: inout SagaDefinition<ShipmentSaga>) {
        saga.startedBy(Dispatched.self, correlatedBy: \.shipmentId) { dispatched, _ in
            ShipmentSaga(shipmentId: dispatched.shipmentId)
        }
        saga.handles(StatusAsked.self, correlatedBy: \.shipmentId, whenNotFound: { asked, context in
            try context.reply(Status(shipmentId: asked.shipmentId, known: false))
            try context.publish(Unknown(shipmentId: asked.shipmentId), to: "shipments.events")
        }) { shipment, _, context in
            try context.reply(Status(shipmentId: shipment.shipmentId, known: true))
        }
        saga.handles(Misuse.self, correlatedBy: .property(\.shipmentId), whenNotFound: { misuse, context in
            switch misuse.operation {
            case "timeout": try context.requestTimeout(after: .seconds(1), Reminder())
            case "complete": try context.markComplete()
            case "originator": try context.replyToOriginator(Status(shipmentId: misuse.shipmentId, known: false))
            default: struct Refused: Error {}; throw Refused()
            }
        }) { _, _, _ in }
        saga.handlesTimeout(Reminder.self) { _, _, _ in }
    }
}

@Suite struct WhenNotFoundHandlerTests {
    let host = SagaTestHost(registry: {
        var registry = HandlerRegistry()
        registry.register(ShipmentSaga.self)
        return registry
    }(), endpointAddress: "shipments")

    @Test func runsInsteadOfThePolicyAndCommits() async throws {
        let result = try await host.deliver(ShipmentSaga.StatusAsked(shipmentId: "s-none"), messageId: "ask-1",
                                            correlationId: "c-1", replyTo: "client")
        #expect(result.disposition == .handled)
        #expect(result.outcome(of: ShipmentSaga.self) == .notFoundHandled)
        #expect(try result.expectReplied(ShipmentSaga.Status.self, to: "client")
                == ShipmentSaga.Status(shipmentId: "s-none", known: false))
        let reply = try #require(result.emitted.first)
        #expect(reply.correlationId == "c-1", "a reply carries the incoming correlation id")
        #expect(reply.messageId == MessageIdentity.derive(from: "ask-1", handler: "Shipment#not-found", position: "1"))
        #expect(try result.expectPublished(ShipmentSaga.Unknown.self, to: "shipments.events").shipmentId == "s-none")
        #expect(result.notFound.isEmpty, "no policy applied")
        #expect(!host.isLive(ShipmentSaga.self, correlationId: "s-none"), "no instance is made")
        #expect(try await host.deliver(ShipmentSaga.StatusAsked(shipmentId: "s-none"), messageId: "ask-1",
                                       replyTo: "client").isDuplicate, "committed with the inbox")
    }

    @Test func aLiveInstanceGetsTheMessageNotTheHandler() async throws {
        try await host.deliver(ShipmentSaga.Dispatched(shipmentId: "s-1"))
        let result = try await host.deliver(ShipmentSaga.StatusAsked(shipmentId: "s-1"), replyTo: "client")
        #expect(result.outcome(of: ShipmentSaga.self) == .updated)
        #expect(try result.expectReplied(ShipmentSaga.Status.self).known)
        result.expectNone(ShipmentSaga.Unknown.self)
    }

    @Test(arguments: ["timeout", "complete", "originator"])
    func noInstanceToChange(_ operation: String) async throws {
        await #expect(throws: SagaError.self) {
            try await host.deliver(ShipmentSaga.Misuse(shipmentId: "s-none", operation: operation))
        }
        #expect(host.emitted.isEmpty && host.pendingTimeouts.isEmpty)
    }

    @Test func aThrowingHandlerFailsTheMessage() async throws {
        await #expect(throws: (any Error).self) {
            try await host.deliver(ShipmentSaga.Misuse(shipmentId: "s-none", operation: "throw"), messageId: "m-1")
        }
        #expect(!host.persistence.hasProcessed(messageId: "m-1"), "not in the inbox: it is retried")
    }
}
