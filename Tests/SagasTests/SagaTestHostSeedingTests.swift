import Foundation
import Sagas
import SagaTesting
import Testing

@Suite("SagaTestHost starts a saga in a given state")
struct SagaTestHostSeedingTests {
    static let shop = Originator(replyTo: "shop", correlationId: "req-1")
    let host = SagaTestHost(OrderPayment.self, endpointAddress: "orders")

    private func key(_ correlationId: String) -> SagaInstanceKey {
        SagaInstanceKey(sagaType: OrderPayment.sagaType, correlationId: correlationId)
    }

    // MARK: What a seed stores

    @Test("a seeded instance is the row a start message stores: version 1, created now, the originator")
    func seedStoresWhatAStartStores() async throws {
        let started = SagaTestHost(OrderPayment.self, endpointAddress: "orders")
        try await started.deliver(PaymentRequested(orderId: "o-1", amount: 500), correlationId: "req-1", replyTo: "shop")
        let fromStart = try #require(started.storedSaga(of: OrderPayment.self, correlationId: "o-1"))

        let seeded = try host.seed(OrderPayment.self, correlationId: "o-1",
                                   state: OrderPayment(orderId: "o-1", amount: 500), originator: Self.shop)
        #expect(host.storedSaga(of: OrderPayment.self, correlationId: "o-1") == seeded)
        #expect(seeded.key == fromStart.key)
        #expect(seeded.state == fromStart.state, "the same JSON")
        #expect(seeded.version == fromStart.version)
        #expect(seeded.originator == fromStart.originator)
        #expect(seeded.createdAt == fromStart.createdAt && seeded.updatedAt == fromStart.updatedAt)
        #expect(seeded.sagaId.count == 36 && seeded.sagaId != fromStart.sagaId, "a new random saga id")

        // No delivery: nothing emitted, in the history or the inbox, and no timeout.
        #expect(host.history.isEmpty && host.emitted.isEmpty)
        #expect(host.pendingTimeouts.isEmpty)
        #expect(host.persistence.contents.processedMessageIds.isEmpty)
    }

    // MARK: Continuing from the seeded state

    @Test("a message continues a seeded instance as it continues a started one, and replies to its originator")
    func deliverToSeededInstance() async throws {
        try host.seed(OrderPayment.self, correlationId: "o-1",
                      state: OrderPayment(orderId: "o-1", amount: 500, captured: 200), originator: Self.shop)
        try await host.advanceTime(by: .seconds(60))

        let part = try await host.deliver(PaymentCaptured(orderId: "o-1", amount: 100))
        #expect(part.outcome(of: OrderPayment.self, correlationId: "o-1") == .updated)
        let stored = try #require(host.storedSaga(of: OrderPayment.self, correlationId: "o-1"))
        #expect(stored.version == 2)
        #expect(stored.createdAt == SagaTestHost.defaultStartDate)
        #expect(stored.updatedAt == SagaTestHost.defaultStartDate.addingTimeInterval(60))
        #expect(host.state(of: OrderPayment.self, correlationId: "o-1")?.captured == 300)

        let rest = try await host.deliver(PaymentCaptured(orderId: "o-1", amount: 200))
        #expect(rest.outcome(of: OrderPayment.self) == .completed)
        let settled = try rest.expectReplied(PaymentSettled.self, to: "shop")
        #expect(settled == PaymentSettled(orderId: "o-1", captured: 500, couponCode: nil))
        #expect(rest.replied.first?.correlationId == "req-1")
        #expect(host.isCompleted(OrderPayment.self, correlationId: "o-1"))
    }

    @Test("without an originator, replyToOriginator fails as after a start message that had no reply_to")
    func noOriginator() async throws {
        try host.seed(OrderPayment.self, correlationId: "o-1",
                      state: OrderPayment(orderId: "o-1", amount: 500, captured: 400))
        #expect(host.storedSaga(of: OrderPayment.self, correlationId: "o-1")?.originator
            == Originator(replyTo: nil, correlationId: nil))
        await #expect(throws: SagaError.noReplyAddress(messageType: PaymentCaptured.messageType, messageId: "m-1")) {
            try await host.deliver(PaymentCaptured(orderId: "o-1", amount: 100), messageId: "m-1")
        }
    }

    /// The README's way to run a timeout handler from a seeded state (seeding has no timeouts).
    @Test("a timeout delivered as the store hands it over reaches the seeded instance")
    func timeoutOfSeededInstance() async throws {
        try host.seed(OrderPayment.self, correlationId: "o-1",
                      state: OrderPayment(orderId: "o-1", amount: 500, captured: 200))
        // As in the README.
        let overdue = TimeoutRequest(
            timeoutId: "overdue-1", saga: SagaInstanceKey(sagaType: OrderPayment.sagaType, correlationId: "o-1"),
            dueAt: host.now, type: PaymentOverdue.messageType, body: try MessageCoding.encode(PaymentOverdue(attempt: 2)))
        let fired = try await host.deliver(overdue.asIncomingMessage())
        #expect(fired.outcome(of: OrderPayment.self) == .updated)
        #expect(try fired.expectSent(CapturePayment.self, to: "payments") == CapturePayment(orderId: "o-1", amount: 300))
        #expect(host.state(of: OrderPayment.self, correlationId: "o-1")?.reminders == 2)
        #expect(try await host.deliver(overdue.asIncomingMessage()).isDuplicate)
    }

    // MARK: State an older version stored

    @Test("a state version 1 stored, without the optional property version 2 added, decodes and is handled")
    func oldVersionJSON() async throws {
        let version1 = #"{"amount":500,"captured":200,"orderId":"o-1","reminders":1}"#
        let seeded = try host.seed(OrderPayment.self, correlationId: "o-1", stateJSON: version1, originator: Self.shop)
        #expect(seeded.state == Data(version1.utf8), "stored byte for byte")
        #expect(host.state(of: OrderPayment.self, correlationId: "o-1")
            == OrderPayment(orderId: "o-1", amount: 500, captured: 200, reminders: 1, couponCode: nil))

        let rest = try await host.deliver(PaymentCaptured(orderId: "o-1", amount: 300))
        #expect(rest.outcome(of: OrderPayment.self) == .completed)
        #expect(try rest.expectReplied(PaymentSettled.self, to: "shop").couponCode == nil)
    }

    @Test("state JSON given as bytes is stored as given")
    func stateJSONData() throws {
        let json = Data(#"{"amount":7,"captured":0,"couponCode":"SPRING","orderId":"o-9","reminders":0}"#.utf8)
        try host.seed(OrderPayment.self, correlationId: "o-9", stateJSON: json)
        #expect(host.storedSaga(of: OrderPayment.self, correlationId: "o-9")?.state == json)
        #expect(host.state(of: OrderPayment.self, correlationId: "o-9")?.couponCode == "SPRING")
    }

    /// The endpoint moves the message to its error queue as `CorruptSagaState`, without retries, and keeps
    /// the stored state (`SagaStateEvolutionTests`); the kit throws that error and rolls the delivery back.
    @Test("a state that does not decode is stored; a delivery to it throws corruptSagaState and changes nothing")
    func undecodableJSON() async throws {
        // Version 0 kept the amount as text.
        let version0 = #"{"amount":"500","captured":200,"orderId":"o-1","reminders":0}"#
        let seeded = try host.seed(OrderPayment.self, correlationId: "o-1", stateJSON: version0)
        try host.seed(OrderPayment.self, correlationId: "o-2", state: OrderPayment(orderId: "o-2", amount: 50),
                      originator: Self.shop)

        let error = await #expect(throws: SagaError.self) {
            try await host.deliver(PaymentCaptured(orderId: "o-1", amount: 300), messageId: "m-1")
        }
        guard case .corruptSagaState(let saga, let reason)? = error else {
            Issue.record("expected corruptSagaState, got \(String(describing: error))")
            return
        }
        #expect(saga == key("o-1"))
        #expect(reason.contains("amount"), "the reason names the field: \(reason)")
        #expect(host.storedSaga(of: OrderPayment.self, correlationId: "o-1") == seeded, "the state stays as it was")
        #expect(!host.persistence.hasProcessed(messageId: "m-1"), "not in the inbox: a replay gets it again")
        #expect(host.history.isEmpty)

        // The saga's other instances go on.
        let other = try await host.deliver(PaymentCaptured(orderId: "o-2", amount: 50))
        #expect(other.outcome(of: OrderPayment.self) == .completed)
    }

    // MARK: Refused

    @Test("seeding a correlation id twice is refused, naming the live instance")
    func seedTwice() throws {
        let first = try host.seed(OrderPayment.self, correlationId: "o-1", state: OrderPayment(orderId: "o-1", amount: 5))
        #expect(throws: SagaSeedingError.instanceExists(key("o-1"), sagaId: first.sagaId, version: 1)) {
            try host.seed(OrderPayment.self, correlationId: "o-1", state: OrderPayment(orderId: "o-1", amount: 9))
        }
        #expect(throws: SagaSeedingError.instanceExists(key("o-1"), sagaId: first.sagaId, version: 1)) {
            try host.seed(OrderPayment.self, correlationId: "o-1", stateJSON: "{}")
        }
        #expect(host.storedSaga(of: OrderPayment.self, correlationId: "o-1") == first, "the first seed stays")
        let error = SagaSeedingError.instanceExists(key("o-1"), sagaId: first.sagaId, version: 1)
        #expect(error.description.contains("OrderPayment/o-1") && error.description.contains("exists already"))
    }

    @Test("seeding over an instance a delivery started is refused; over a completed one it starts it again")
    func seedOverStartedAndCompleted() async throws {
        try await host.deliver(PaymentRequested(orderId: "o-1", amount: 5), replyTo: "shop")
        let started = try #require(host.storedSaga(of: OrderPayment.self, correlationId: "o-1"))
        #expect(throws: SagaSeedingError.instanceExists(key("o-1"), sagaId: started.sagaId, version: 1)) {
            try host.seed(OrderPayment.self, correlationId: "o-1", state: OrderPayment(orderId: "o-1", amount: 5))
        }

        try await host.deliver(PaymentCaptured(orderId: "o-1", amount: 5))
        #expect(host.isCompleted(OrderPayment.self, correlationId: "o-1"))
        try host.seed(OrderPayment.self, correlationId: "o-1", state: OrderPayment(orderId: "o-1", amount: 8))
        #expect(host.isLive(OrderPayment.self, correlationId: "o-1"))
        #expect(!host.isCompleted(OrderPayment.self, correlationId: "o-1"))
    }

    @Test("seeding a saga the host's registry does not have is refused, naming the sagas it has")
    func sagaNotRegistered() throws {
        let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")
        let expected = SagaSeedingError.sagaNotRegistered(
            sagaType: "OrderPayment", swiftType: String(reflecting: OrderPayment.self), registered: ["OrderSaga", "GroupSaga"])
        #expect(throws: expected) {
            try host.seed(OrderPayment.self, correlationId: "o-1", state: OrderPayment(orderId: "o-1", amount: 5))
        }
        #expect(throws: expected) {
            try host.seed(OrderPayment.self, correlationId: "o-1", stateJSON: "{}")
        }
        #expect(host.liveSagaCount == 0)
        #expect(expected.description.contains("'OrderPayment'") && expected.description.contains("'GroupSaga', 'OrderSaga'"))
    }

    @Test("an empty correlation id is refused: no message could reach the instance")
    func emptyCorrelationId() throws {
        #expect(throws: SagaSeedingError.emptyCorrelationId(sagaType: "OrderPayment")) {
            try host.seed(OrderPayment.self, correlationId: "", state: OrderPayment(orderId: "", amount: 5))
        }
        #expect(host.liveSagaCount == 0)
    }

    @Test("a state that cannot be encoded is refused with the encoder's reason")
    func stateNotEncodable() throws {
        let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")
        let error = #expect(throws: SagaSeedingError.self) {
            try host.seed(OrderSaga.self, correlationId: "o-1", state: OrderSaga(orderId: "o-1", amount: 5, score: .nan))
        }
        guard case .stateNotEncodable(let saga, let reason)? = error else {
            Issue.record("expected stateNotEncodable, got \(String(describing: error))")
            return
        }
        #expect(saga == SagaInstanceKey(sagaType: "OrderSaga", correlationId: "o-1"))
        #expect(reason.contains("score"), "the reason names the property: \(reason)")
        #expect(host.liveSagaCount == 0)
    }
}
