import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// A saga whose stored state no longer decodes (a new version of the saga added a required property):
/// its messages go to the error queue at once, its state stays as it was, the other instances go on, and
/// once the saga can read the old state the error-queued message can be replayed.
@Suite("Saga state that no longer decodes", .timeLimit(.minutes(3)))
struct SagaStateEvolutionTests {
    /// Version 2 of `CounterSaga`: it added `step`, required.
    struct StrictCounter: Saga {
        static let sagaType = CounterSaga.sagaType
        var counterId: String
        var count: Int
        var step: Int

        static func define(_ saga: inout SagaDefinition<StrictCounter>) {
            saga.startedBy(CounterSaga.Increment.self, correlatedBy: \.counterId,
                           whenExisting: { saga, _, _ in saga.count += saga.step }) { message, _ in
                StrictCounter(counterId: message.counterId, count: 1, step: 1)
            }
        }
    }

    /// Version 3: `step` is optional with a default, so version 1's states decode again.
    struct TolerantCounter: Saga {
        static let sagaType = CounterSaga.sagaType
        var counterId: String
        var count: Int
        var step: Int?

        static func define(_ saga: inout SagaDefinition<TolerantCounter>) {
            saga.startedBy(CounterSaga.Increment.self, correlatedBy: \.counterId,
                           whenExisting: { saga, _, _ in saga.count += saga.step ?? 1 }) { message, _ in
                TolerantCounter(counterId: message.counterId, count: 1, step: 1)
            }
        }
    }

    @Test("an undecodable state sends the message to the error queue once, keeps the state, and replays after a fix")
    func undecodableStateIsErrorQueuedAndReplayable() async throws {
        let harness = try await EndpointHarness.make()
        // A state version 1 wrote: no `step`.
        try await harness.withStore("evolve") { store in
            try store.insertSaga(SagaRecord(sagaType: CounterSaga.sagaType, correlationId: "c-old", sagaId: "saga-old",
                                            state: Data(#"{"counterId":"c-old","count":5}"#.utf8), createdAt: Date()))
        }
        var strict = HandlerRegistry()
        strict.register(StrictCounter.self)
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(strict, queues: ["counters"], database: "evolve", metrics: metrics)
        try await harness.send(CounterSaga.Increment(counterId: "c-old"), to: "counters", messageId: "inc-old")
        try await harness.send(CounterSaga.Increment(counterId: "c-new"), to: "counters", messageId: "inc-new")

        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("counters.error") == 1 }
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "counters.error")
        let copy = try #require(try await admin.show(messageId: "inc-old"))
        #expect(copy.errorType == "CorruptSagaState")
        let reason = copy.reason ?? ""
        #expect(reason.contains("c-old") && reason.contains("step"), "the reason names the instance and the field: \(reason)")
        #expect(copy.attempts == 1, "no retry can fix it")
        try await waitUntil(timeout: .seconds(20)) {
            try await harness.state(StrictCounter.self, "c-new", in: "evolve")?.count == 1
        }
        let kept = try #require(try await harness.saga("evolve", type: CounterSaga.sagaType, id: "c-old"))
        #expect(String(decoding: kept.state, as: UTF8.self) == #"{"counterId":"c-old","count":5}"#)
        #expect(kept.version == 1)
        await harness.stop(endpoint)

        // The fix: a version that reads the old state. The replayed message continues the same instance.
        var tolerant = HandlerRegistry()
        tolerant.register(TolerantCounter.self)
        let fixed = harness.startEndpoint(tolerant, queues: ["counters"], database: "evolve")
        #expect(try await admin.replay(messageId: "inc-old"))
        try await waitUntil(timeout: .seconds(20)) {
            try await harness.state(TolerantCounter.self, "c-old", in: "evolve")?.count == 6
        }
        #expect(try await harness.saga("evolve", type: CounterSaga.sagaType, id: "c-old")?.sagaId == "saga-old")
        await harness.stop(fixed)
        #expect(try await harness.depth("counters.error") == 0)
        await harness.tearDown()
    }
}
