import Foundation
import Sagas
import SagaTesting
import Testing

// Names that clash by accident. Each failed before: the second declaration or registration silently
// replaced or joined the first (a start message discarded for ever; two sagas reading each other's state;
// one message type decoded as another). Now the program stops where the saga or handler is registered,
// with a message that names both sides.

enum Billing {
    struct Placed: Message { var orderId: String }
    struct Process: Saga {
        var orderId: String
        static func define(_ saga: inout SagaDefinition<Process>) {
            saga.startedBy(Placed.self, correlatedBy: \.orderId) { placed, _ in Process(orderId: placed.orderId) }
        }
    }
}

enum Shipping {
    struct Placed: Message { var orderId: String; var address: String }
    struct Process: Saga {
        var address: String
        static func define(_ saga: inout SagaDefinition<Process>) {
            saga.startedBy(Shipping.Placed.self, correlatedBy: \.orderId) { placed, _ in
                Process(address: placed.address)
            }
        }
    }
    /// The same wire message as `Billing.Placed`, read by a view with fewer fields: a deliberate choice.
    struct PlacedView: Message {
        static let messageType = "OrderPlacedEvent"
        var orderId: String
    }
    struct PlacedFull: Message {
        static let messageType = "OrderPlacedEvent"
        var orderId: String
        var amount: Int
    }
}

/// Each saga with a timeout type of its own, both named `Timeout` by default: no clash, a timeout only
/// reaches the saga that asked for it.
struct RemindingSaga: Saga {
    struct Timeout: Message {}
    var orderId: String
    var reminded = false
    static func define(_ saga: inout SagaDefinition<RemindingSaga>) {
        saga.startedBy(Billing.Placed.self, correlatedBy: \.orderId) { placed, context in
            try context.requestTimeout(after: .seconds(1), Timeout())
            return RemindingSaga(orderId: placed.orderId)
        }
        saga.handlesTimeout(Timeout.self) { state, _, _ in state.reminded = true }
    }
}

struct ExpiringSaga: Saga {
    struct Timeout: Message { var reason: String }
    var orderId: String
    var expired = ""
    static func define(_ saga: inout SagaDefinition<ExpiringSaga>) {
        saga.startedBy(Billing.Placed.self, correlatedBy: \.orderId) { placed, context in
            try context.requestTimeout(after: .seconds(2), Timeout(reason: "late"))
            return ExpiringSaga(orderId: placed.orderId)
        }
        saga.handlesTimeout(Timeout.self) { state, timeout, _ in state.expired = timeout.reason }
    }
}

/// Pinned on purpose to another type's default name (a view of that message).
struct PlacedV2: Message {
    static let messageType = "Placed"
    var orderId: String
}

struct StartedTwice: Saga {
    var count = 0
    static func define(_ saga: inout SagaDefinition<StartedTwice>) {
        saga.startedBy(Billing.Placed.self, correlatedBy: \.orderId) { _, _ in StartedTwice() }
        saga.handles(Billing.Placed.self, correlatedBy: \.orderId) { state, _, _ in state.count += 1 }
    }
}

@Suite("Registering sagas and handlers")
struct RegistrationTests {
    @Test("a message type declared twice in one saga stops the program, pointing at whenExisting")
    func duplicateRoute() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.register(StartedTwice.self)
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("saga StartedTwice declares message type 'Placed' twice"), "\(output)")
        #expect(output.contains("whenExisting"), "\(output)")
    }

    @Test("two sagas under one saga type stop the program, naming both Swift types")
    func sharedSagaType() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.register(Billing.Process.self)
            registry.register(Shipping.Process.self) { saga in
                saga.startedBy(Shipping.PlacedView.self, correlatedBy: \.orderId) { _, _ in
                    Shipping.Process(address: "")
                }
            }
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("Billing.Process and"), "\(output)")
        #expect(output.contains("Shipping.Process both have the saga type 'Process'"), "\(output)")
    }

    @Test("one saga registered twice stops the program")
    func sagaRegisteredTwice() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.register(Billing.Process.self)
            registry.register(Billing.Process.self)
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("Billing.Process is registered twice"), "\(output)")
    }

    @Test("two message types under one default name stop the program, naming both")
    func sharedDefaultMessageName() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.handle(Billing.Placed.self) { _, _ in }
            registry.handle(Shipping.Placed.self) { _, _ in }
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("Billing.Placed and"), "\(output)")
        #expect(output.contains("Shipping.Placed both have the name 'Placed'"), "\(output)")
    }

    // Failed with the first version of the check (found in review): every route was claimed, timeouts too.
    @Test("two sagas may each have a nested timeout type of the same default name")
    func nestedTimeoutsOfTheSameName() async throws {
        var registry = HandlerRegistry()
        registry.register(RemindingSaga.self)
        registry.register(ExpiringSaga.self)
        let host = SagaTestHost(registry: registry)
        try await host.deliver(Billing.Placed(orderId: "o-1"), messageId: "m-1")
        try await host.advanceTime(by: .seconds(3))
        #expect(host.state(of: RemindingSaga.self, correlationId: "o-1")?.reminded == true)
        #expect(host.state(of: ExpiringSaga.self, correlationId: "o-1")?.expired == "late")
    }

    // Failed with the first version of the check (found in review): only the first type under a name
    // was kept, so an explicitly named type registered first hid two default-named ones that clash.
    @Test("two default-named types clash even after an explicitly named one took the name")
    func clashAfterAnExplicitName() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.handle(PlacedV2.self) { _, _ in }
            registry.handle(Billing.Placed.self) { _, _ in }
            registry.handle(Shipping.Placed.self) { _, _ in }
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("Shipping.Placed both have the name 'Placed'"), "\(output)")
    }

    @Test("two message types that set the same messageType on purpose are both handled")
    func sharedExplicitMessageName() async throws {
        var registry = HandlerRegistry()
        registry.handle(Shipping.PlacedView.self) { view, context in
            try context.send(Billing.Placed(orderId: view.orderId), to: "views")
        }
        registry.handle(Shipping.PlacedFull.self) { full, context in
            try context.send(Billing.Placed(orderId: "\(full.orderId)/\(full.amount)"), to: "full")
        }
        let host = SagaTestHost(registry: registry)
        let result = try await host.deliver(Shipping.PlacedFull(orderId: "o-1", amount: 5), messageId: "m-1")
        #expect(result.sent.map(\.queue) == ["views", "full"])
    }

    @Test("a stateless handler's outgoing ids do not depend on other types' handlers or their order")
    func statelessIdsAreStable() async throws {
        func registry(pingFirst: Bool) -> HandlerRegistry {
            var registry = HandlerRegistry()
            let ping: @Sendable (Ping, HandlerContext) async throws -> Void = { ping, context in
                try context.send(Pong(text: ping.text), to: "pongs")
            }
            if pingFirst {
                registry.handle(Ping.self, ping)
                registry.handle(Pong.self) { _, _ in }
            } else {
                registry.handle(Pong.self) { _, _ in }
                registry.register(GroupSaga.self)
                registry.handle(Ping.self, ping)
            }
            return registry
        }
        let first = try await SagaTestHost(registry: registry(pingFirst: true))
            .deliver(Ping(text: "x"), messageId: "m-1")
        let second = try await SagaTestHost(registry: registry(pingFirst: false))
            .deliver(Ping(text: "x"), messageId: "m-1")
        #expect(first.sent.map(\.messageId) == second.sent.map(\.messageId))
        #expect(first.sent.map(\.messageId) == [MessageIdentity.derive(from: "m-1", handler: "handler:Ping", position: "1")])
    }
}
