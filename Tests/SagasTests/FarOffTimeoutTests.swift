import Foundation
import Sagas
import SagaTesting
import Testing

/// A saga that asks for one timeout after a delay its start message gives, in seconds.
struct Snooze: Saga {
    var id: String
    var woken = 0

    struct Start: Message { static let messageType = "test.SnoozeStart"; var id: String; var seconds: Int64 }
    struct Wake: Message { static let messageType = "test.SnoozeWake" }

    static func define(_ saga: inout SagaDefinition<Snooze>) {
        saga.startedBy(Start.self, correlatedBy: \.id) { start, context in
            try context.requestTimeout(after: .seconds(start.seconds), Wake())
            return Snooze(id: start.id)
        }
        saga.handlesTimeout(Wake.self) { snooze, _, _ in snooze.woken += 1 }
    }
}

/// The endpoint stores any delay a handler asks for (`.seconds(Int64.max)` as "never" is due in some
/// billions of centuries, and stays pending); the test kit must agree rather than stop the test process.
@Suite("SagaTestHost and timeouts due beyond its microsecond clock")
struct FarOffTimeoutTests {
    /// Failed before: the kit measured every pending timeout in microseconds as an `Int64`, which traps
    /// past ±292,000 years, so any `advanceTime` ended the whole test process.
    @Test("a timeout due after Int64.max seconds stays pending while the clock advances")
    func farFutureStaysPending() async throws {
        let host = SagaTestHost(Snooze.self)
        try await host.deliver(Snooze.Start(id: "never", seconds: .max))
        let advanced = try await host.advanceTime(by: .seconds(365 * 24 * 3600))
        #expect(advanced.firedTimeouts.isEmpty)
        #expect(host.pendingTimeouts.count == 1)
        #expect(host.state(of: Snooze.self, correlationId: "never")?.woken == 0)
    }

    /// Failed before: past `Int64` microseconds the kit held every due time to 9.2e18 s, just short of
    /// `Int64.max` seconds, so an advance that far fired a "never" timeout asked for after the clock had
    /// moved, a thousand years before it was due (the endpoint never fires it).
    @Test("a timeout due after Int64.max seconds does not fire before it is due")
    func farFutureDoesNotFireEarly() async throws {
        let host = SagaTestHost(Snooze.self)
        try await host.advanceTime(by: .seconds(1000 * 365 * 24 * 3600))
        try await host.deliver(Snooze.Start(id: "never", seconds: .max))
        let advanced = try await host.advanceTime(by: .seconds(9_200_000_000_000_000_000))
        #expect(advanced.firedTimeouts.isEmpty)
        #expect(host.pendingTimeouts.count == 1)
    }

    @Test("a timeout due long before the clock's start fires at the next advance")
    func farPastFiresAtOnce() async throws {
        let host = SagaTestHost(Snooze.self)
        try await host.deliver(Snooze.Start(id: "past", seconds: -.max))
        let advanced = try await host.advanceTime(by: .zero)
        #expect(advanced.firedTimeouts.count == 1)
        #expect(host.pendingTimeouts.isEmpty)
        #expect(host.state(of: Snooze.self, correlationId: "past")?.woken == 1)
        #expect(host.now == SagaTestHost.defaultStartDate, "the clock does not go back to the due time")
    }
}
