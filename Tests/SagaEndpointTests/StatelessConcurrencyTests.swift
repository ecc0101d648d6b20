// Stateless handlers are where an endpoint waits for the outside world (an HTTP API). Failed before: a
// batch ran them one message after another, so a handler that waited 200 ms held an endpoint to five
// messages a second whatever its prefetch (a new user's two-endpoint app, 50 messages in 10.8 s).
import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Synchronization
import Testing

@Suite("Stateless handlers of a batch run concurrently", .timeLimit(.minutes(3)))
struct StatelessConcurrencyTests {
    /// How many handler calls are running, and the most there were at once.
    final class InFlight: Sendable {
        private let state = Mutex((now: 0, most: 0, done: 0))
        func enter() { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
        func leave() { state.withLock { $0.now -= 1; $0.done += 1 } }
        var most: Int { state.withLock { $0.most } }
        var done: Int { state.withLock { $0.done } }
    }

    /// 24 waiting messages, each handled by a call that waits 300 ms and then sends one reply on.
    func run(concurrency: Int?) async throws -> (most: Int, replies: [AMQPDelivery]) {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("calls")
        try await harness.declareQueue("called")
        let inFlight = InFlight()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { message, context in
            inFlight.enter()
            defer { inFlight.leave() }
            try await Task.sleep(for: .milliseconds(300))   // an HTTP call
            try context.send(Explode(note: "done \(message.note)"), to: "called")
        }
        for index in 0..<24 {
            try await harness.send(Explode(note: "\(index)"), to: "calls", messageId: "call-\(index)")
        }
        let endpoint = harness.startEndpoint(registry, queues: ["calls"], database: "calls") { configuration in
            if let concurrency { configuration.statelessHandlerConcurrency = concurrency }
        }
        let replies = try await harness.receive(from: "called", count: 24, timeout: .seconds(60))
        await harness.stop(endpoint)
        await harness.tearDown()
        return (inFlight.most, replies)
    }

    @Test("by default several messages' handlers wait at once, and every message is handled once")
    func concurrentByDefault() async throws {
        let (most, replies) = try await run(concurrency: nil)
        #expect(most > 1, "at most \(most) handler call at a time")
        #expect(most <= 16)
        #expect(Set(replies.compactMap(\.properties.messageId)).count == 24)
        #expect(Set(try replies.map { try MessageCoding.decode(Explode.self, from: $0.message.body, messageType: Explode.messageType).note })
                == Set((0..<24).map { "done \($0)" }))
    }

    @Test("statelessHandlerConcurrency = 1 runs them one at a time")
    func oneAtATime() async throws {
        let (most, replies) = try await run(concurrency: 1)
        #expect(most == 1)
        #expect(replies.count == 24)
    }
}
