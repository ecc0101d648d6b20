import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import Sagas
import Testing

/// An alarm: `Arm` starts it and asks for a `Ring` timeout due at once; `Ring` sends `Rang` to
/// `alarms.out` and completes the alarm, but throws until `fixed` is raised (a bug fixed in a new release).
private struct AlarmSaga: Saga {
    static let sagaType = "Alarm"
    static let queue = "alarms"
    static let outQueue = "alarms.out"

    var alarmId: String

    /// `ringAfterMs`: when the Ring falls due (nil: no Ring).
    struct Arm: Message { static let messageType = "test.ArmAlarm"; var alarmId: String; var ringAfterMs: Int? = 0 }
    struct Disarm: Message { static let messageType = "test.DisarmAlarm"; var alarmId: String }
    struct Ring: Message { static let messageType = "test.RingAlarm" }
    struct Rang: Message { static let messageType = "test.AlarmRang"; var alarmId: String }
    struct Broken: Error, CustomStringConvertible { var description: String { "the bell is broken" } }

    static func define(_ saga: inout SagaDefinition<AlarmSaga>) {
        let fixed = Flag()
        fixed.set()
        define(&saga, fixed: fixed)
    }

    static func define(_ saga: inout SagaDefinition<AlarmSaga>, fixed: Flag) {
        saga.startedBy(Arm.self, correlatedBy: \.alarmId) { arm, context in
            if let delay = arm.ringAfterMs { try context.requestTimeout(after: .milliseconds(delay), Ring()) }
            return AlarmSaga(alarmId: arm.alarmId)
        }
        saga.handles(Disarm.self, correlatedBy: \.alarmId) { _, _, context in try context.markComplete() }
        saga.handlesTimeout(Ring.self) { alarm, _, context in
            guard fixed.isSet else { throw Broken() }
            try context.send(Rang(alarmId: alarm.alarmId), to: outQueue)
            try context.markComplete()
        }
    }

    static func registry(fixed: Flag) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(AlarmSaga.self) { define(&$0, fixed: fixed) }
        return registry
    }
}

@Suite("A saga timeout from the error queue", .timeLimit(.minutes(3)))
struct TimeoutReplayTests {
    /// A fresh vhost with the alarm queues and an endpoint hosting AlarmSaga; its Ring fails until `fixed`
    /// is raised, and a failing message goes to the error queue after `immediateRetries` (no delayed ones).
    private func start(fixed: Flag, immediateRetries: Int = 3,
                       metrics: TestMetrics? = nil) async throws -> (EndpointHarness, Task<Void, any Error>) {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(AlarmSaga.queue)
        try await harness.declareQueue(AlarmSaga.outQueue)
        let endpoint = harness.startEndpoint(AlarmSaga.registry(fixed: fixed), queues: [AlarmSaga.queue],
                                             database: "alarms", metrics: metrics) { configuration in
            configuration.immediateRetries = immediateRetries
            configuration.delayedRetries = []
        }
        return (harness, endpoint)
    }

    /// A flag already raised: the Ring works.
    private static func raised() -> Flag {
        let flag = Flag()
        flag.set()
        return flag
    }
    // Failed before: the replayed copy came back to the error queue as NoHandler (a timeout type from the
    // broker has no handler), and the alarm never rang. Later: it rang, but saga_timeouts_fired_total
    // counted only timeouts that came from the store, so this one was never counted.
    @Test("a timeout that failed every retry, replayed after the fix, reaches its saga")
    func replayedTimeoutReachesItsSaga() async throws {
        let fixed = Flag()
        let metrics = TestMetrics()
        let (harness, endpoint) = try await start(fixed: fixed, immediateRetries: 1, metrics: metrics)
        try await harness.send(AlarmSaga.Arm(alarmId: "a-1"), to: AlarmSaga.queue)

        try await waitUntil(timeout: .seconds(20)) { try await harness.depth(AlarmSaga.queue + ".error") == 1 }
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: AlarmSaga.queue + ".error")
        let failed = try #require(try await admin.list().first)
        #expect(failed.type == AlarmSaga.Ring.messageType)
        #expect(failed.reason?.contains("the bell is broken") == true)
        #expect(failed.properties.headers?["x-saga-timeout-saga-type"] == "Alarm")
        #expect(failed.properties.headers?["x-saga-timeout-correlation-id"] == "a-1")
        #expect(failed.properties.headers?["x-saga-timeout-saga-id"] != nil)
        // The bug is fixed (a new release); the operator replays the timeout.
        fixed.set()
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth(AlarmSaga.queue + ".error") == 1 }
        #expect(try await admin.replay(messageId: failed.messageId))

        let rang = try await harness.receive(from: AlarmSaga.outQueue, count: 1)
        #expect(try rang.first?.decode(AlarmSaga.Rang.self).alarmId == "a-1")
        #expect(try await harness.depth(AlarmSaga.queue + ".error") == 0)
        try await waitUntil(timeout: .seconds(10), message: "the timeout counted as fired, once") {
            ((try? metrics.expectCounter("saga_timeouts_fired_total"))?.totalValue ?? 0) == 1
        }
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    @Test("a message that names a saga instance goes only to that saga's timeout, and for a gone saga nowhere")
    func replayedTimeoutOfAGoneSaga() async throws {
        let (harness, endpoint) = try await start(fixed: Self.raised())
        // No alarm "a-2" was ever armed: its timeout is dropped (as one for a completed saga), not an error.
        try await harness.send(AlarmSaga.Ring(), to: AlarmSaga.queue, headers: [
            "x-saga-timeout-saga-type": "Alarm", "x-saga-timeout-correlation-id": "a-2"])
        // Then a real one, to know the first was handled before it.
        try await harness.send(AlarmSaga.Arm(alarmId: "a-3"), to: AlarmSaga.queue)
        let rang = try await harness.receive(from: AlarmSaga.outQueue, count: 2, timeout: .seconds(5))
        #expect(try rang.map { try $0.decode(AlarmSaga.Rang.self).alarmId } == ["a-3"])
        #expect(try await harness.depth(AlarmSaga.queue + ".error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    // Failed before: both were acknowledged and dropped without a trace (processed, no saga ran), so a
    // timeout replayed after its saga type was renamed, or with a damaged header, was lost for good.
    @Test("a timeout naming a saga that does not handle its type, or no correlation id, goes back to the error queue")
    func undeliverableTimeoutTargetIsRejected() async throws {
        let (harness, endpoint) = try await start(fixed: Self.raised())
        // "AlarmV1": the saga's type before a release renamed it; no saga of that type handles the Ring.
        try await harness.send(AlarmSaga.Ring(), to: AlarmSaga.queue, headers: [
            "x-saga-timeout-saga-type": "AlarmV1", "x-saga-timeout-correlation-id": "a-4"])
        // A saga's correlation id is never empty: no instance can be meant.
        try await harness.send(AlarmSaga.Ring(), to: AlarmSaga.queue, headers: [
            "x-saga-timeout-saga-type": "Alarm", "x-saga-timeout-correlation-id": ""])
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth(AlarmSaga.queue + ".error") == 2 }
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: AlarmSaga.queue + ".error")
        let failed = try await admin.list()
        #expect(failed.count == 2)
        #expect(failed.allSatisfy { $0.errorType == "NoHandler" })
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    // Failed before: the Arm went to the instance the headers named ("a-1", past its own correlation),
    // was taken for a timeout of a saga that is gone and dropped: alarm a-9 never started.
    @Test("on a message that is not one of the named saga's timeouts, the headers are ignored")
    func headersDoNotSteerOrdinaryMessages() async throws {
        let (harness, endpoint) = try await start(fixed: Self.raised())
        try await harness.send(AlarmSaga.Arm(alarmId: "a-9"), to: AlarmSaga.queue, headers: [
            "x-saga-timeout-saga-type": "Alarm", "x-saga-timeout-correlation-id": "a-1"])
        let rang = try await harness.receive(from: AlarmSaga.outQueue, count: 1)
        #expect(try rang.first?.decode(AlarmSaga.Rang.self).alarmId == "a-9")
        #expect(try await harness.depth(AlarmSaga.queue + ".error") == 0)
        await harness.stop(endpoint)
        await harness.tearDown()
    }

    // Failed before: the new alarm a-5 took the old one's Ring, rang and completed.
    @Test("a replayed timeout of a saga that completed does not reach a new instance under its correlation id")
    func replayedTimeoutOfAnEarlierInstance() async throws {
        let fixed = Flag()
        let (harness, endpoint) = try await start(fixed: fixed, immediateRetries: 0)
        try await harness.send(AlarmSaga.Arm(alarmId: "a-5"), to: AlarmSaga.queue)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth(AlarmSaga.queue + ".error") == 1 }
        // The first alarm a-5 ends; a second one starts under the same id, without a Ring of its own.
        try await harness.send(AlarmSaga.Disarm(alarmId: "a-5"), to: AlarmSaga.queue)
        try await harness.send(AlarmSaga.Arm(alarmId: "a-5", ringAfterMs: nil), to: AlarmSaga.queue)
        fixed.set()
        try await Task.sleep(for: .milliseconds(500))
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: AlarmSaga.queue + ".error")
        let failed = try #require(try await admin.list().first)
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth(AlarmSaga.queue + ".error") == 1 }
        #expect(try await admin.replay(messageId: failed.messageId))

        #expect(try await harness.receive(from: AlarmSaga.outQueue, count: 1, timeout: .seconds(3)).isEmpty)
        #expect(try await harness.depth(AlarmSaga.queue + ".error") == 0)
        // The second alarm is still there and its own messages reach it.
        try await harness.send(AlarmSaga.Disarm(alarmId: "a-5"), to: AlarmSaga.queue)
        try await harness.send(AlarmSaga.Arm(alarmId: "a-6"), to: AlarmSaga.queue)
        #expect(try await harness.receive(from: AlarmSaga.outQueue, count: 1).first?.decode(AlarmSaga.Rang.self).alarmId == "a-6")
        await harness.stop(endpoint)
        await harness.tearDown()
    }
}
