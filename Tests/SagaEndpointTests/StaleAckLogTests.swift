// After a connection loss every delivery of the batches in flight cannot be acknowledged (the broker
// redelivers them, and the inbox recognises them): that is one line a second, not one per delivery.
import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Synchronization
import Testing

@Suite("Acks lost with a connection", .timeLimit(.minutes(3)))
struct StaleAckLogTests {
    // Failed before (a chaos helper's run): one info line per delivery, 30,820 lines for 355 connection
    // losses under a backlog with prefetch 400.
    @Test("a connection lost under a batch logs its failed acks once, with their count")
    func oneLinePerSecond() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("calls")
        try await harness.declareQueue("called")
        // The error queue full for good: the copy of the failing message is nacked, so its delivery is held
        // and the batch's other deliveries are acked one by one (no `multiple` ack over a held one), as after
        // a crash. (A command to a full queue no longer holds its delivery: it stays in the outbox.)
        _ = try await harness.connection.deleteQueue("calls.error")
        try await harness.connection.declareQueue(QueueDeclaration(
            name: "calls.error", arguments: ["x-max-length": .int64(0), "x-overflow": .string("reject-publish")]))
        let started = Mutex(0)
        let released = Mutex(false)
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { message, context in
            started.withLock { $0 += 1 }
            // An HTTP call that lasts until the connection is gone (closing it takes a while under load).
            while !released.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
            if message.note == "0" { throw Explode.Failure() }
            try context.send(Explode(note: "done \(message.note)"), to: "called")
        }
        for index in 0..<40 {
            try await harness.send(Explode(note: "\(index)"), to: "calls", messageId: "call-\(index)")
        }
        let capture = LogCapture()
        let name = TestBroker.uniqueName("stale-acks")
        let endpoint = harness.makeEndpoint(registry, queues: ["calls"], database: "calls",
                                            logger: capture.logger(label: "stale-acks")) {
            $0.connectionName = name
            $0.statelessHandlerConcurrency = 64
            $0.immediateRetries = 0
            $0.delayedRetries = []
        }
        let task = Task { try await endpoint.run() }
        // The first batch in its handlers (all 40 when they came at once; fewer, if the broker trickled them).
        try await capture.waitUntil(timeout: .seconds(30), message: "handlers started") { started.withLock { $0 } >= 1 }
        try await Task.sleep(for: .milliseconds(300))
        let closed = try await runOnThread { try TestBroker.closeConnections(named: name + "-consume") }
        #expect(closed == 1)
        released.withLock { $0 = true }
        let replies = try await harness.receive(from: "called", count: 39, timeout: .seconds(60))
        #expect(Set(replies.compactMap(\.properties.messageId)).count == 39, "each message handled once")
        try await capture.waitUntil(timeout: .seconds(30), message: "the failed acks logged") {
            capture.log.lines.contains { $0.contains("ack not possible") }
        }
        try await Task.sleep(for: .milliseconds(500))
        let lines = capture.log.lines.filter { $0.contains("ack not possible") }
        #expect(lines.count <= 3, "\(lines.count) lines:\n\(lines.prefix(5).joined(separator: "\n"))")
        // Failed before: the line had the delivery tag only, not which message or queue it was.
        for line in lines {
            #expect(line.contains("queue=calls") && line.contains("message_type=test.Explode")
                    && line.contains("message_id=call-"), "\(line)")
        }
        task.cancel()
        _ = await task.result
        await harness.tearDown()
    }
}
