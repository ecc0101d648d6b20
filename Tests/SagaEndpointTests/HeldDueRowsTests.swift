import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import Testing

/// An alarm whose `Beep` timeout (due at once) succeeds and completes the saga.
private struct AlarmSaga: Saga {
    static let sagaType = "Alarm"
    static let queue = "alarms"

    var alarmId: String

    struct Set: Message { static let messageType = "test.SetAlarm"; var alarmId: String }
    struct Beep: Message { static let messageType = "test.Beep" }

    static func registry(beeps: Tally) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(AlarmSaga.self) { saga in
            saga.startedBy(Set.self, correlatedBy: \.alarmId) { set, context in
                try context.requestTimeout(after: .milliseconds(0), Beep())
                return AlarmSaga(alarmId: set.alarmId)
            }
            saga.handlesTimeout(Beep.self) { _, _, context in
                beeps.increment()
                try context.markComplete()
            }
        }
        return registry
    }

    static func define(_ saga: inout SagaDefinition<AlarmSaga>) {}
}

/// Due rows held back because their error-queue copy was not confirmed (`UnconfirmedDueRows`).
@Suite("Due rows held after an unconfirmed error-queue copy", .timeLimit(.minutes(3)))
struct HeldDueRowsTests {
    // Failed before: a held row stayed in the poller's in-flight set, which is capped at 500 rows; with
    // 500 rows whose copies the broker does not take (the error queue deleted), every id the poller had
    // room for was one of them, and a timeout that would have succeeded waited for as long as the error
    // queue was missing, though "the other rows go on meanwhile".
    @Test("500 held rows do not keep a later timeout from firing")
    func heldRowsDoNotStarveOthers() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue(AlarmSaga.queue)
        let beeps = Tally()
        let metrics = TestMetrics()
        let endpoint = harness.makeEndpoint(AlarmSaga.registry(beeps: beeps), queues: [AlarmSaga.queue],
                                            database: "alarms", metrics: metrics)
        let running = Task { try await endpoint.run() }
        try await waitUntil(timeout: .seconds(30), message: "ready") { endpoint.isReady }
        // The copies (mandatory) come back unroutable while the error queue is missing.
        _ = try await harness.connection.deleteQueue(AlarmSaga.queue + ".error")
        // 600 due rows nobody handles: each goes to the error queue, whose copy is not confirmed.
        let now = Date()
        try await harness.withStore("alarms") { store in
            try store.transaction { store in
                for index in 0..<600 {
                    try store.scheduleTimeout(TimeoutRecord(
                        timeoutId: "orphan-\(index)", sagaType: "", correlationId: "orphan-\(index)",
                        dueAt: now, messageType: "test.Nobody", body: Data("{}".utf8), headers: [:], createdAt: now))
                }
            }
        }
        func unconfirmed() -> Int { Int((try? metrics.expectCounter("saga_messages_unconfirmed_total"))?.totalValue ?? 0) }
        try await waitUntil(timeout: .seconds(30), message: "every orphan's copy came back once") { unconfirmed() >= 600 }

        try await harness.send(AlarmSaga.Set(alarmId: "a-1"), to: AlarmSaga.queue)
        let fired = (try? await waitUntil(timeout: .seconds(15), message: "the alarm's timeout fired") {
            beeps.count >= 1
        }) != nil
        #expect(fired, "a timeout that succeeds did not fire in 15 s while 600 rows were held")
        // The handler may run ahead of its transaction: the row goes once that commits.
        try await waitUntil(timeout: .seconds(10), message: "the alarm's row deleted") {
            try await harness.rowCount("alarms", "timeouts", where: "timeout_id NOT LIKE 'orphan-%'") == 0
        }
        await harness.stop(running)
        await harness.tearDown()
    }
}
