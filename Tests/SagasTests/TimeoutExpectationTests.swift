import Foundation
import Sagas
import SagaTesting
import Testing

/// A saga that asks for a timeout after the milliseconds its start message gives.
private struct Nap: Saga {
    var id: String

    struct Start: Message { static let messageType = "test.NapStart"; var id: String; var milliseconds: Int64 }
    struct Wake: Message, Equatable { static let messageType = "test.NapWake"; var id: String }

    static func define(_ saga: inout SagaDefinition<Nap>) {
        saga.startedBy(Start.self, correlatedBy: \.id) { start, context in
            try context.requestTimeout(after: .milliseconds(start.milliseconds), Wake(id: start.id))
            return Nap(id: start.id)
        }
        saga.handlesTimeout(Wake.self) { _, _, _ in }
    }
}

@Suite("expectTimeoutRequested: a typed check of the timeouts a delivery asked for")
struct TimeoutExpectationTests {
    let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")

    @Test("a delivery's timeouts are found by type, and by delay, and decoded")
    func deliveryTimeouts() async throws {
        let started = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        #expect(try started.expectTimeoutRequested(PaymentReminder.self).attempt == 1)
        #expect(try started.expectTimeoutRequested(PaymentReminder.self, after: .seconds(30)).attempt == 1)
        try started.expectTimeoutRequested(PaymentDeadline.self, after: .seconds(20))
        #expect(started.timeoutRequests.map(\.requestedAt) == [host.now, host.now])
    }

    @Test("an advance's timeouts are measured from the time of the delivery that asked, not from the advance's start")
    func advanceTimeouts() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        try await host.advanceTime(by: .seconds(10))
        // The reminder due at 30 s asks for the next one 30 s later, at 60 s: 50 s after this advance began.
        let advanced = try await host.advanceTime(by: .seconds(20))
        #expect(try advanced.expectTimeoutRequested(PaymentReminder.self, after: .seconds(30)).attempt == 2)
        #expect(try host.expectTimeoutRequested(PaymentReminder.self).attempt == 1, "the host lists every delivery's")
        #expect(host.timeoutRequests.map(\.timeout.type) == [PaymentReminder.messageType, PaymentDeadline.messageType,
                                                              PaymentReminder.messageType])
    }

    @Test("sub-second and far-off delays match exactly as requested")
    func exactDelays() async throws {
        var registry = HandlerRegistry()
        registry.register(Nap.self)
        registry.register(Snooze.self)
        let host = SagaTestHost(registry: registry)
        let nap = try await host.deliver(Nap.Start(id: "n-1", milliseconds: 150))
        #expect(try nap.expectTimeoutRequested(Nap.Wake.self, after: .milliseconds(150)) == Nap.Wake(id: "n-1"))
        let never = try await host.deliver(Snooze.Start(id: "never", seconds: .max))
        try never.expectTimeoutRequested(Snooze.Wake.self, after: .seconds(Int64.max))
        try withKnownIssue {
            _ = try never.expectTimeoutRequested(Snooze.Wake.self, after: .seconds(1))
        } matching: { issue in
            issue.comments.map(\.rawValue).joined().contains("timeout test.SnoozeWake after 9.223372036854776e+18 seconds")
        }
        try withKnownIssue {
            _ = try nap.expectTimeoutRequested(Nap.Wake.self, after: .milliseconds(151))
        } matching: { issue in
            issue.comments.map(\.rawValue).joined().contains("timeout test.NapWake after 0.15 seconds")
        }
    }

    @Test("no match records an issue at the caller's line listing the timeouts requested and what the delivery did")
    func failedExpectationListsTheTimeouts() async throws {
        let started = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        let reminderId = try #require(started.timeoutsRequested.first?.timeoutId)
        let line = #_sourceLocation.line + 2
        try withKnownIssue {
            try started.expectTimeoutRequested(PaymentReminder.self, after: .seconds(20))
        } matching: { issue in
            let text = issue.comments.map(\.rawValue).joined(separator: "\n")
            return issue.sourceLocation?.line == line
                && text.contains("expected timeout OrderSaga.PaymentReminder requested after 20.0 seconds, but the timeouts requested were:")
                && text.contains(#"  - timeout OrderSaga.PaymentReminder after 30.0 seconds (due 2026-01-01 00:00:30 +0000) for OrderSaga/o-1 [id \#(reminderId)] {"attempt":1}"#)
                && text.contains("  - timeout OrderSaga.PaymentDeadline after 20.0 seconds (due 2026-01-01 00:00:20 +0000)")
                && text.contains("what was delivered:\ndelivery of OrderPlaced [id m-1]")
        }
        let copy = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        try withKnownIssue {
            try copy.expectTimeoutRequested(PaymentReminder.self)
        } matching: { issue in
            let text = issue.comments.map(\.rawValue).joined(separator: "\n")
            return text.contains("(no timeout was requested)") && text.contains("OrderPlaced [id m-1] at 2026-01-01 00:00:00 +0000: duplicate")
        }
    }
}
