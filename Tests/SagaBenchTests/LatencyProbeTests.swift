import AMQPTransport
import BrokerTestSupport
import Foundation
@testable import saga_bench
import Testing

/// The half-load latency run and its floor, against the broker in a vhost of their own (the reference
/// app's queue names are fixed): every paced message arrives on `bank` and is matched to its slot, through
/// the endpoint and through the bare forwarder alike, and the endpoint's batches are reported.
@Suite("Bench latency probe", .timeLimit(.minutes(3)))
struct LatencyProbeTests {
    /// A bench context in `vhost`, whose reference-app queues are declared.
    static func context(in vhost: (name: String, url: String)) async throws -> BenchmarkContext {
        let context = BenchmarkContext(configuration: try AMQPConfiguration(url: vhost.url), queueA: "unused-a",
                                       queueB: "unused-b", messages: 0, batchSize: 100, prefetch: 400, bodySize: 100,
                                       ownsTransferTopology: true)
        let admin = try await AMQPConnection.connect(context.configuration)
        try await TransferTopology.declare(admin)
        await admin.close()
        return context
    }

    @Test("a paced schedule arrives in full through the endpoint and through the bare forwarder",
          arguments: [LatencyProbe.Forwarder.endpoint, .transport])
    func everyMessageArrives(forwarder: LatencyProbe.Forwarder) async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        defer { try? TestBroker.deleteVhost(vhost.name) }
        let context = try await Self.context(in: vhost)

        let result = try await LatencyProbe.run(context, rate: 200, seconds: 1, forwarder: forwarder)
        #expect(result.sent == 200)
        #expect(result.received == 200, "every DebitAccount (or forwarded copy) matched to its slot")
        #expect(result.p50 > 0 && result.p50 <= result.p99 && result.p99 <= result.max)
        switch forwarder {
        case .endpoint:
            // The endpoint's own record of the run: every request went through one of its batches.
            let batches = try #require(result.batches)
            #expect(batches.messages == 200)
            #expect(batches.count >= 1 && batches.full <= batches.count && batches.limit == 100)
            #expect(batches.commitMilliseconds != nil)
        case .transport:
            #expect(result.batches == nil)
        }
    }

    /// The client waits with rabbitmq-c's poll, which counts whole milliseconds rounded down: a wait of
    /// under two milliseconds came back at once, and at a rate of one message per tick or more the client's
    /// thread spun through the whole run, taking a core from the endpoint it measures.
    @Test("the paced client sleeps between sends instead of spinning")
    func clientDoesNotSpin() async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        defer { try? TestBroker.deleteVhost(vhost.name) }
        let context = try await Self.context(in: vhost)

        let result = try await LatencyProbe.run(context, rate: 2000, seconds: 1, forwarder: .transport)
        #expect(result.received == 2000)
        // Sending a message and reading one costs the client a few tens of microseconds of CPU; a spinning
        // thread spends the whole interval between sends (500 µs here). Under half of it leaves room for a
        // slow machine.
        #expect(result.clientMicrosPerMessage < 200, "the client used \(result.clientMicrosPerMessage) µs of CPU per message")
    }
}
