import Foundation
import Sagas
import SagaTesting
import Testing

/// A saga whose timeout asks for itself again, every `everyMs` milliseconds.
struct Beacon: Saga {
    var id: String
    var everyMs: Int
    var beeps = 0

    struct Start: Message { static let messageType = "test.BeaconStart"; var id: String; var everyMs: Int }
    struct Beep: Message { static let messageType = "test.BeaconBeep" }

    static func define(_ saga: inout SagaDefinition<Beacon>) {
        saga.startedBy(Start.self, correlatedBy: \.id) { start, context in
            try context.requestTimeout(after: .milliseconds(start.everyMs), Beep())
            return Beacon(id: start.id, everyMs: start.everyMs)
        }
        saga.handlesTimeout(Beep.self) { beacon, _, context in
            beacon.beeps += 1
            try context.requestTimeout(after: .milliseconds(beacon.everyMs), Beep())
        }
    }
}

@Suite("SagaTestHost's virtual clock")
struct SagaTestHostClockTests {
    /// Failed before: each step's seconds were added to a `Date`, rounding every time, so three advances
    /// of 50 ms ended a fraction of a microsecond short of the 150 ms timeout, which did not fire.
    @Test("advancing in steps fires a timeout when the steps add up to its delay")
    func stepsAddUpToTheDelay() async throws {
        let host = SagaTestHost(Beacon.self)
        try await host.deliver(Beacon.Start(id: "b", everyMs: 150))
        var fired: [Int] = []
        for _ in 0..<3 { fired.append(try await host.advanceTime(by: .milliseconds(50)).firedTimeouts.count) }
        #expect(fired == [0, 0, 1])
        #expect(host.now == SagaTestHost.defaultStartDate.addingTimeInterval(0.15))
    }

    @Test("a thousand small steps neither drift past nor fall short of a timeout")
    func manySmallSteps() async throws {
        let host = SagaTestHost(Beacon.self)
        try await host.deliver(Beacon.Start(id: "b", everyMs: 10_000))
        var firedAt: [Int] = []
        for step in 1...1_000 where try await !host.advanceTime(by: .milliseconds(10)).firedTimeouts.isEmpty {
            firedAt.append(step)
        }
        #expect(firedAt == [1_000])
    }

    @Test("a timeout that asks for itself again fires once per step of its period")
    func chainedTimeoutsKeepStep() async throws {
        let host = SagaTestHost(Beacon.self)
        try await host.deliver(Beacon.Start(id: "b", everyMs: 50))
        var fired: [Int] = []
        for _ in 0..<20 { fired.append(try await host.advanceTime(by: .milliseconds(50)).firedTimeouts.count) }
        #expect(fired == Array(repeating: 1, count: 20))
        #expect(host.state(of: Beacon.self, correlationId: "b")?.beeps == 20)
    }

    /// Failed before: a precondition trapped, ending the test process (and every test running in it).
    @Test("advancing by a negative duration throws and leaves the clock alone")
    func negativeDurationThrows() async throws {
        let host = SagaTestHost(Beacon.self)
        try await host.deliver(Beacon.Start(id: "b", everyMs: 50))
        await #expect(throws: SagaTestHostError.negativeDuration(.milliseconds(-1))) {
            try await host.advanceTime(by: .milliseconds(-1))
        }
        #expect(host.now == SagaTestHost.defaultStartDate)
        #expect(try await host.advanceTime(by: .milliseconds(50)).firedTimeouts.count == 1)
    }

    /// Failed before: a date the clock had passed (a deadline kept from an earlier step) returned an advance
    /// of nothing, as if no timeout were due, where `advanceTime(by:)` with a negative step throws.
    @Test("advancing to a date the clock has passed throws and leaves the clock alone")
    func pastDateThrows() async throws {
        let host = SagaTestHost(Beacon.self)
        try await host.deliver(Beacon.Start(id: "b", everyMs: 50))
        try await host.advanceTime(by: .milliseconds(100))
        let earlier = SagaTestHost.defaultStartDate.addingTimeInterval(0.05)
        let now = host.now
        await #expect(throws: SagaTestHostError.dateInThePast(earlier, now: now)) {
            try await host.advanceTime(to: earlier)
        }
        #expect(host.now == now)
        #expect(try await host.advanceTime(to: now).deliveries.isEmpty, "the clock's own time is no step back")
    }

    /// Failed before: `>=` on `Date` is `!(<)`, so NaN passed for a date after `now`, and was taken as the
    /// farthest time: a beacon ringing every 1e6 s fired until the advance gave up (`tooManyDeliveries`).
    @Test("advancing to a date that is not a number throws and fires nothing")
    func nanDateThrows() async throws {
        let host = SagaTestHost(Beacon.self)
        try await host.deliver(Beacon.Start(id: "b", everyMs: 1_000_000_000))
        let nan = Date(timeIntervalSince1970: .nan)
        await #expect(throws: SagaTestHostError.dateNotANumber(now: SagaTestHost.defaultStartDate)) {
            try await host.advanceTime(to: nan)
        }
        #expect(host.state(of: Beacon.self, correlationId: "b")?.beeps == 0)
        #expect(host.now == SagaTestHost.defaultStartDate)
    }
}
