import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

/// An endpoint whose input queue list it cannot consume stops at start, naming the setting, before it
/// declares anything on the broker.
@Suite("An endpoint's input queues setting")
struct InputQueueSettingTests {
    // Found by a user trying the library: with no input queues the endpoint logged "endpoint started" and
    // consumed nothing; with an empty name (a list read from an unset setting) RabbitMQ declared a
    // server-named durable queue (amq.gen-…) and a ".error" queue, and the endpoint retried consuming ""
    // for ever. Before the fix, `run()` did not return and the time limit below failed the test. A queue
    // listed twice (a review found a shutdown that never ended with one) started two consumers on it.
    @Test("no input queues, an empty name or a repeated one stops run() at once and leaves nothing on the broker",
          arguments: [[String](), [""], ["orders", ""], ["orders", "payments", "orders"]])
    func refusedAtStart(queues: [String]) async throws {
        let harness = try await EndpointHarness.make()
        let endpoint = harness.makeEndpoint(OrderSaga.registry(), queues: queues, database: "refused")
        let refusal: EndpointConfigurationError
        do {
            try await withTimeLimit(.seconds(60), "the endpoint's run()") { try await endpoint.run() }
            Issue.record("run() returned without an error")
            await harness.tearDown()
            return
        } catch let error as EndpointConfigurationError {
            refusal = error
        } catch {
            Issue.record("expected EndpointConfigurationError, got \(error)")
            await harness.tearDown()
            return
        }
        #expect(refusal.setting == "inputQueues")
        #expect("\(refusal)".hasPrefix("invalid EndpointConfiguration.inputQueues: "), "\(refusal)")
        let listed = try TestBroker.rabbitmqctl(["-q", "list_queues", "-p", harness.vhost, "name"])
        let names = listed.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(!names.contains { $0.hasPrefix("amq.gen-") || $0 == ".error" || $0 == "orders" || $0 == "payments" },
                "\(names)")
        if queues.count == 3 {
            #expect("\(refusal)".contains("'orders' is listed twice (at index 0 and 2)"), "\(refusal)")
        }
        #expect(!FileManager.default.fileExists(atPath: harness.databasePath("refused")), "nothing opened")
        await harness.tearDown()
    }
}

@Suite("An endpoint's prefetch setting")
struct PrefetchSettingTests {
    // AMQP's prefetch 0 is "no limit": the broker pushed a whole backlog into the process ahead of the batch
    // loop. The CLI refused it; a host application's EndpointConfiguration did not, and the endpoint ran.
    @Test("a prefetch of 0 stops run() at once, naming the setting")
    func zeroRefused() async throws {
        let harness = try await EndpointHarness.make()
        let endpoint = harness.makeEndpoint(OrderSaga.registry(), queues: ["orders"], database: "prefetch") {
            $0.prefetch = 0
        }
        do {
            try await withTimeLimit(.seconds(60), "the endpoint's run()") { try await endpoint.run() }
            Issue.record("run() returned without an error")
        } catch let error as EndpointConfigurationError {
            #expect(error.setting == "prefetch")
            #expect("\(error)".contains("no limit"), "\(error)")
        } catch {
            Issue.record("expected EndpointConfigurationError, got \(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: harness.databasePath("prefetch")), "nothing opened")
        await harness.tearDown()
    }
}
