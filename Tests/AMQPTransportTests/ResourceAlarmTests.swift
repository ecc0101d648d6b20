// A broker in a resource alarm (memory or disk) blocks the connections that publish: the broker stops
// reading from them, so confirms and the close handshake do not come until the alarm clears. A review
// found a graceful shutdown waiting for ever then (10 minutes, the grace period's cancellation ignored).
@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("A broker in a resource alarm", .timeLimit(.minutes(3)))
struct ResourceAlarmTests {
    @Test("a publish waiting for its confirm ends when its task is cancelled; close does not wait for the alarm")
    func blockedPublishIsCancellable() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(url: node.url, connectionName: "resource-alarm")
        let queue = TestBroker.uniqueName("amqp-test-alarm")
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
        // Any memory use is above this watermark: the broker raises the alarm at once.
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.0000001"]) }

        let finished = Flag()
        let publishing = Task {
            defer { finished.set() }
            return await connection.publish([.toQueue(queue, message("held"))])
        }
        try await waitUntil(timeout: .seconds(30), message: "the broker to block the connection") {
            await connection.blockedReason != nil
        }
        try await Task.sleep(for: .milliseconds(300))
        #expect(!finished.isSet, "the premise: the confirm is held back")

        publishing.cancel()
        try await waitUntil(timeout: .seconds(10), message: "the cancelled publish to return") {
            finished.isSet
        }
        let outcome = try #require(await publishing.value.first)
        guard case .failed(let error) = outcome else {
            Issue.record("expected a failed outcome, got \(outcome)")
            return
        }
        #expect(error.code == .cancelled)

        // The close handshake would wait the whole RPC timeout (30 s): the socket is dropped instead.
        let closing = Task { await connection.close() }
        let closed = Flag()
        Task { await closing.value; closed.set() }
        try await waitUntil(timeout: .seconds(10), message: "close to return while blocked") {
            closed.isSet
        }
    }

    // Failed before: a batch larger than the socket's buffers kept the connection's thread in its write
    // until the alarm cleared; the cancellation (the endpoint's shutdown) could not run, nor could close.
    @Test("a batch the broker stops reading, cancelled, ends: the socket is shut down and the publishes fail")
    func stuckWriteIsCancellable() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start() }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(url: node.url, connectionName: "resource-alarm-write")
        let queue = TestBroker.uniqueName("amqp-test-alarm-write")
        try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.0000001"]) }

        // 64 MiB: far more than a loopback socket buffers while nobody reads.
        let body = Data(repeating: 0x61, count: 1 << 20)
        let requests = (0..<64).map { index in
            PublishRequest.toQueue(queue, AMQPMessage(body: body, properties: BasicProperties(messageId: "big-\(index)")))
        }
        let finished = Flag()
        let publishing = Task {
            defer { finished.set() }
            return await connection.publish(requests)
        }
        try await Task.sleep(for: .seconds(2))
        #expect(!finished.isSet, "the premise: the batch is held back")

        publishing.cancel()
        try await waitUntil(timeout: .seconds(10), message: "the cancelled publish to return") { finished.isSet }
        let outcomes = await publishing.value
        #expect(outcomes.count == 64)
        #expect(!outcomes.contains { $0.isConfirmed }, "nothing was confirmed during the alarm")

        let closing = Task { await connection.close() }
        let closed = Flag()
        Task { await closing.value; closed.set() }
        try await waitUntil(timeout: .seconds(10), message: "close to return") { closed.isSet }
    }
}
