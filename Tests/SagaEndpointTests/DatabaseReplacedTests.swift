import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import SagaEndpoint
import SagaStore
import Sagas
import TestSagaSupport
import Testing

/// The database file replaced (a backup restored over it) or deleted while the endpoint runs.
@Suite("Database file replaced while running", .timeLimit(.minutes(3)))
struct DatabaseReplacedTests {
    // Failed before: in WAL mode SQLite does not notice that its file was replaced, so the endpoint went
    // on committing into the old, unlinked file and acked the message; its effects were gone for good
    // with the process (nobody else can open that file).
    @Test("a message is not acked into a database file that was replaced: it waits, and the error is logged")
    func replacedFileIsNotWrittenTo() async throws {
        let harness = try await EndpointHarness.make()
        let capture = LogCapture()
        let metrics = TestMetrics()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "replaced", metrics: metrics,
                                            logger: capture.logger(label: "replaced"))
        let running = Task { try await endpoint.run() }
        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "first")
        try await capture.waitUntil(timeout: .seconds(20), message: "the first message is processed") {
            try await harness.depth("counters") == 0 && (try? metrics.expectCounter("saga_messages_processed_total"))?.totalValue == 1
        }

        // A copy of the file (as a restored backup would be) renamed over it.
        let path = harness.databasePath("replaced")
        let copy = harness.directory.appendingPathComponent("copy.sqlite").path
        try await harness.withStore("replaced") { store in try store.connection.execute("VACUUM INTO '\(copy)'") }
        #expect(rename(copy, path) == 0)

        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "second")
        try? await waitUntil(timeout: .seconds(20)) { capture.tail().contains("was moved, replaced or deleted") }
        #expect(capture.tail().contains("was moved, replaced or deleted"), "no error logged: \(capture.tail(20))")
        #expect(try metrics.expectCounter("saga_messages_processed_total").totalValue == 1,
                "nothing was processed into the replaced file")
        await harness.stop(running)
        // Not acked: back in its queue once the endpoint's connection closed.
        try? await waitUntil(timeout: .seconds(10)) { try await harness.depth("counters") == 1 }
        #expect(try await harness.depth("counters") == 1, "the second message was acked: \(capture.tail(20))")
        #expect(try await harness.depth("counters.error") == 0)
        await harness.tearDown()
    }

    // Failed before: the endpoint went on committing into the write-ahead log it had open, unlinked, and
    // acked the messages; until a checkpoint (every 40 MiB) those commits were nowhere else, so a crash
    // lost them (a database that had never reached a checkpoint lost even its tables).
    @Test("a message is not acked after the -wal and -shm files were deleted: it waits, and the error is logged")
    func deletedWriteAheadLogIsNotWrittenTo() async throws {
        let harness = try await EndpointHarness.make()
        let capture = LogCapture()
        let metrics = TestMetrics()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "wal-deleted", metrics: metrics,
                                            logger: capture.logger(label: "wal-deleted"))
        let running = Task { try await endpoint.run() }
        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "first")
        try await capture.waitUntil(timeout: .seconds(20), message: "the first message is processed") {
            try await harness.depth("counters") == 0 && (try? metrics.expectCounter("saga_messages_processed_total"))?.totalValue == 1
        }

        let path = harness.databasePath("wal-deleted")
        #expect(unlink(path + "-wal") == 0)
        #expect(unlink(path + "-shm") == 0)

        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "second")
        try? await waitUntil(timeout: .seconds(20)) { capture.tail().contains("was moved, replaced or deleted") }
        #expect(capture.tail().contains("was moved, replaced or deleted"), "no error logged: \(capture.tail(20))")
        #expect(try metrics.expectCounter("saga_messages_processed_total").totalValue == 1,
                "nothing was processed into the deleted log")
        await harness.stop(running)
        try? await waitUntil(timeout: .seconds(10)) { try await harness.depth("counters") == 1 }
        #expect(try await harness.depth("counters") == 1, "the second message was acked: \(capture.tail(20))")
        await harness.tearDown()
    }

    // Failed before: a batch of messages that never reach the database (a type nobody handles goes
    // straight to the error queue) counted as one that wrote it: readiness went back to 200 and "the
    // database can be written again" was logged while every other message was still requeued.
    @Test("a message rejected without touching the database does not make the endpoint ready again")
    func rejectionDoesNotClaimTheDatabaseWritable() async throws {
        let harness = try await EndpointHarness.make()
        let capture = LogCapture()
        var registry = HandlerRegistry()
        registry.register(CounterSaga.self)
        let endpoint = harness.makeEndpoint(registry, queues: ["counters"], database: "rejected",
                                            logger: capture.logger(label: "rejected"))
        let running = Task { try await endpoint.run() }
        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "first")
        try await capture.waitUntil(timeout: .seconds(20), message: "the first message is processed") {
            try await harness.depth("counters") == 0 && endpoint.isReady
        }
        let path = harness.databasePath("rejected")
        #expect(unlink(path + "-wal") == 0)
        #expect(unlink(path + "-shm") == 0)
        try await harness.send(CounterSaga.Increment(counterId: "c-1"), to: "counters", messageId: "second")
        try await capture.waitUntil(timeout: .seconds(20), message: "not ready") {
            endpoint.notReadyReason?.contains("database cannot be written") == true
        }

        // A type nobody handles: to the error queue, no database involved.
        try await harness.sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: "unknown-1",
            type: "test.NobodyHandlesThis"), to: "counters")
        var readyMeanwhile = false
        try await waitUntil(timeout: .seconds(20)) {
            if endpoint.isReady { readyMeanwhile = true }
            return try await harness.depth("counters.error") == 1
        }
        let deadline = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < deadline {
            if endpoint.isReady { readyMeanwhile = true }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(!readyMeanwhile, "ready while the database still cannot be written")
        #expect(!capture.tail().contains("the database can be written again"), "\(capture.tail(20))")
        await harness.stop(running)
        await harness.tearDown()
    }
}
