import BrokerTestSupport
import Foundation
import Sagas
@testable import SagaEndpoint
import ServiceLifecycle
import Synchronization
import TestSagaSupport
import Testing

/// An input queue listed twice gets two consumers, and each its forwarder. The consumers to cancel at a
/// graceful shutdown were kept by queue name, so only the second of them was cancelled: the first one's
/// forwarder never ended, and since the batch loop's intake now ends with the last forwarder, the shutdown
/// never ended either. Failed before (the run still going a minute after the shutdown was triggered).
@Suite("A graceful shutdown with an input queue listed twice", .timeLimit(.minutes(3)))
struct ShutdownRepeatedQueueTests {
    @Test("every consumer of a queue listed twice is cancelled, and the endpoint stops")
    func stopsWithARepeatedQueue() async throws {
        let harness = try await EndpointHarness.make()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let log = LogCapture()
        let endpoint = harness.makeEndpoint(registry, queues: ["qtwice", "qtwice"], database: "qtwice",
                                            logger: log.logger(label: "endpoint"))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: endpoint)], logger: log.logger(label: "group")))
        let ended = Atomic<Bool>(false)
        let running = Task {
            defer { ended.store(true, ordering: .relaxed) }
            try await group.run()
        }
        try await log.waitUntil(timeout: .seconds(30), message: "ready after start") { endpoint.isReady }
        try await harness.send(CounterSaga.Increment(counterId: "c-twice"), to: "qtwice", messageId: "qtwice-1")
        try await log.waitUntil(timeout: .seconds(30), message: "processed") {
            try await harness.state(CounterSaga.self, "c-twice", in: "qtwice")?.count == 1
        }

        await group.triggerGracefulShutdown()
        do {
            try await log.waitUntil(timeout: .seconds(60), message: "the endpoint stops") {
                ended.load(ordering: .relaxed)
            }
        } catch {
            running.cancel()  // ends it the hard way, for the teardown
        }
        _ = try? await running.value
        await harness.tearDown()
    }
}
