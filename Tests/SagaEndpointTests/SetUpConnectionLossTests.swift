// A connection lost while the endpoint sets itself up at start (declaring its topology and queues,
// consuming) is waited out, as a broker unreachable at start is, not taken for a refusal.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Sagas
import Testing
@testable import SagaEndpoint

@Suite("A connection lost during the set-up at start", .timeLimit(.minutes(3)))
struct SetUpConnectionLossTests {
    /// (class, method, what): queue.bind, basic.consume.
    static let steps: [(UInt16, UInt16, String)] = [(50, 20, "queue.bind"), (60, 20, "basic.consume")]

    // Failed before (a chaos helper's run: a TCP proxy cutting the connection at one method): the endpoint
    // ended with "cannot declare the topology: … connectionLost" (exit 1 in `saga-endpoint run`).
    @Test("the endpoint sets up again once the connection is back, and serves", arguments: [0, 1])
    func setUpAgain(_ index: Int) async throws {
        let (classId, method, name) = Self.steps[index]
        let harness = try await EndpointHarness.make()
        let components = try #require(URLComponents(string: harness.url))
        let proxy = try CuttingProxy(upstreamPort: components.port ?? 5672, cutAtClass: classId, method: method)
        defer { proxy.stop() }
        var proxied = components
        proxied.port = proxy.port
        let url = try #require(proxied.string)
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { ping, context in try context.send(Explode(note: "pong " + ping.note), to: "pongs") }
        let endpoint = harness.startEndpoint(registry, queues: ["pings"], database: "pings") {
            $0.amqpURL = url
            $0.topology = EndpointTopology(
                exchanges: [ExchangeDeclaration(name: "pings.events", kind: .topic)],
                queues: [QueueDeclaration(name: "pings"), QueueDeclaration(name: "pongs")],
                bindings: [BindingDeclaration(source: "pings.events", destination: "pings", routingKey: "#")])
        }
        try await waitUntil(timeout: .seconds(30), message: "the proxy cut the connection at \(name)") { proxy.didCut }
        try await harness.send(Explode(note: "after the cut"), to: "pings")
        let pongs = try await harness.receive(from: "pongs", count: 1, timeout: .seconds(60))
        #expect(pongs.count == 1, "the endpoint serves after the connection lost at \(name)")
        endpoint.cancel()
        let result = await endpoint.result
        if case .failure(let error) = result, !(error is CancellationError) {
            Issue.record("the endpoint failed: \(error)")
        }
        await harness.tearDown()
    }
}
