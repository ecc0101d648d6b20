import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
import MoneyTransfer
import SagaStore
import SagaTesting
import Sagas
import Testing
@testable import SagaEndpoint

// Differential tests (continued): bursts that fill batches, what a handler sees of a parked retry or a
// stored timeout, header kinds, the reference app's payout, a failing timeout.

extension KitEndpointDifferentialTests {
    /// Interleaved lives of several instances, with duplicates, restarts and not-found messages close together.
    static func burstSteps(instances: Int) -> [DiffStep] {
        var rounds: [[DiffStep]] = []
        for i in 0..<instances {
            let id = "x\(i)"
            rounds.append([
                .message(DiffSaga.Open(id: id, note: "1"), id: "open-\(id)", correlationId: "c-\(id)", replyTo: DiffSaga.replies),
                .message(DiffSaga.Open(id: id, note: "1"), id: "open-\(id)", correlationId: "c-\(id)", replyTo: DiffSaga.replies),
                .message(DiffSaga.Ask(id: "ghost-\(id)"), id: "ask-ghost-\(id)", correlationId: "g-\(id)", replyTo: DiffSaga.replies),
                .message(DiffSaga.Open(id: id, note: "2"), id: "open2-\(id)"),
                .message(DiffSaga.Step(id: id, n: 5), id: "step5-\(id)"),
                .message(DiffSaga.Step(id: "none-\(id)", n: 1), id: "step-none-\(id)"),
                .message(DiffSaga.Early(id: id), id: "early-\(id)"),
                .message(DiffSaga.Late(id: "nobody-\(id)"), id: "late-nobody-\(id)"),
                .message(DiffSaga.Ask(id: id), id: "ask-\(id)", correlationId: "q-\(id)", replyTo: DiffSaga.replies),
                .message(DiffSaga.Step(id: id, n: 7), id: "step7-\(id)"),
                .message(DiffSaga.Step(id: id, n: 5), id: "step5-\(id)"),
                .message(DiffSaga.Echo(text: "e"), id: "echo-\(id)", correlationId: id, replyTo: DiffSaga.replies),
                .message(DiffSaga.Tagged(batch: id, n: 1), id: "tagged-\(id)"),
                .message(DiffSaga.Step(id: id, n: -3), id: "orig-\(id)"),
                .message(DiffSaga.Step(id: id, n: 0), id: "close-\(id)"),
                .message(DiffSaga.Late(id: id), id: "late-\(id)"),
                .message(DiffSaga.Ask(id: id), id: "ask-after-\(id)", correlationId: "q2-\(id)", replyTo: DiffSaga.replies),
                .message(DiffSaga.Open(id: id, note: "3"), id: "open3-\(id)"),
                .message(DiffSaga.Step(id: id, n: 2), id: "step2-\(id)"),
            ])
        }
        // Round robin: instance after instance, step by step.
        var steps: [DiffStep] = []
        for position in 0..<rounds[0].count {
            for round in rounds { steps.append(round[position]) }
        }
        return steps
    }

    static func burst(handlersAhead: Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let steps = burstSteps(instances: 8)
        let host = SagaTestHost(registry: DiffSaga.registry(), endpointAddress: DiffSaga.queue)
        let outcomes = await runKit(host, steps)
        let kit = kitSnapshot(host, errors: outcomes)

        let harness = try await diffHarness()
        let driver = EndpointDriver(harness: harness, registry: DiffSaga.registry(), queue: DiffSaga.queue,
                                    outputs: outputs) { configuration in
            configuration.batchSize = 6
            configuration.prefetch = 24
            configuration.handlersAheadOfCommit = handlersAhead
        }.start()
        try await driver.burst(steps, kit: outcomes)
        await driver.stop()
        // Batches of more than one message ran (else this would be the sequential test again).
        let batchSizes = try driver.metrics.expectRecorder("saga_batch_size").values
        #expect(batchSizes.contains { $0 > 1 }, "batch sizes \(batchSizes)", sourceLocation: sourceLocation)
        let endpoint = try await driver.snapshot()
        compare(kit: kit, endpoint: endpoint, mismatches: driver.mismatches, sourceLocation: sourceLocation)
        await harness.tearDown()
    }

    @Test("a burst with handlers ahead of the commit ends as the kit's sequential run")
    func burstAhead() async throws {
        try await Self.burst(handlersAhead: true)
    }

    @Test("a burst with handlers inside the transaction ends as the kit's sequential run")
    func burstInside() async throws {
        try await Self.burst(handlersAhead: false)
    }
}

extension KitEndpointDifferentialTests {
    @Test("a retryLater message parked and retried is seen by its handler as the kit shows it")
    func parkedRetryView() async throws {
        let headers = ["x-tenant": "t-1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
        try await Self.differential([
            .message(ProbeSaga.See(id: "p"), id: "see-p", correlationId: "corr-p", replyTo: DiffSaga.replies, headers: headers),
            .advance(.milliseconds(350)),
            .message(ProbeSaga.Start(id: "p"), id: "start-p", headers: headers),
            .advance(.milliseconds(350)),
            .message(ProbeSaga.See(id: "never"), id: "see-never", correlationId: "corr-n", replyTo: DiffSaga.replies, headers: headers),
            .advance(.milliseconds(350)), .advance(.milliseconds(350)), .advance(.milliseconds(350)),
        ], registry: ProbeSaga.registry())
    }

    @Test("a retryLater message's error-queue copy carries what the kit's dead letter holds")
    func retryLaterErrorCopy() async throws {
        let host = SagaTestHost(registry: ProbeSaga.registry(), endpointAddress: DiffSaga.queue)
        try await host.deliver(ProbeSaga.See(id: "gone"), messageId: "see-gone", correlationId: "corr-g",
                               replyTo: DiffSaga.replies, headers: ["x-tenant": "t-1", "count": "5", "flag": "true"])
        try await host.advanceTime(by: .seconds(2))
        let letter = try #require(host.deadLetters.first?.message)

        let harness = try await Self.diffHarness()
        let driver = EndpointDriver(harness: harness, registry: ProbeSaga.registry(), queue: DiffSaga.queue,
                                    outputs: Self.outputs).start()
        try await harness.sendRaw(try MessageCoding.encode(ProbeSaga.See(id: "gone")), properties: BasicProperties(
            contentType: "application/json", headers: ["x-tenant": .string("t-1"), "count": .int32(5), "flag": .bool(true)],
            deliveryMode: .persistent, correlationId: "corr-g", replyTo: DiffSaga.replies, messageId: "see-gone",
            type: ProbeSaga.See.messageType), to: DiffSaga.queue)
        let copy = try #require(try await harness.errorMessages(of: DiffSaga.queue, count: 1, timeout: .seconds(20)).first)
        await driver.stop()
        #expect(copy.properties.messageId == letter.messageId)
        #expect(copy.properties.type == letter.type)
        #expect(copy.properties.correlationId == letter.correlationId)
        #expect(copy.properties.replyTo == letter.replyTo)
        #expect(copy.message.body == letter.body)
        #expect(copy.header("x-error-type") == "SagaNotFound")
        #expect(copy.header("x-original-queue") == DiffSaga.queue)
        for (key, value) in letter.headers {
            #expect(copy.header(key) == value, "header \(key)")
        }
        await harness.tearDown()
    }

    @Test("a timeout the store hands over reaches a seeded saga as the kit's TimeoutRequest.asIncomingMessage does")
    func storedTimeoutView() async throws {
        let timeout = TimeoutRequest(
            timeoutId: "tick-1", saga: SagaInstanceKey(sagaType: ProbeSaga.sagaType, correlationId: "s"),
            dueAt: SagaTestHost.defaultStartDate, type: ProbeSaga.Tick.messageType,
            body: try MessageCoding.encode(ProbeSaga.Tick(n: 1)),
            headers: ["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
        let host = SagaTestHost(registry: ProbeSaga.registry(), endpointAddress: DiffSaga.queue)
        let seeded = try host.seed(ProbeSaga.self, correlationId: "s", state: ProbeSaga(id: "s"))
        let fired = try await host.deliver(timeout.asIncomingMessage())
        let kit = kitSnapshot(host, errors: [(0, .handled(fired.message.messageId))])

        let harness = try await Self.diffHarness()
        let driver = EndpointDriver(harness: harness, registry: ProbeSaga.registry(), queue: DiffSaga.queue,
                                    outputs: Self.outputs)
        let now = Date()
        try await harness.withStore("diff") { store in
            try store.insertSaga(SagaRecord(sagaType: ProbeSaga.sagaType, correlationId: "s", sagaId: seeded.sagaId,
                                            state: seeded.state, version: 1, createdAt: now, updatedAt: now))
            try store.scheduleTimeout(TimeoutRecord(
                timeoutId: timeout.timeoutId, sagaType: timeout.saga.sagaType, correlationId: timeout.saga.correlationId,
                dueAt: now, messageType: timeout.type, body: timeout.body, headers: timeout.headers, createdAt: now))
        }
        driver.start()
        await driver.await(.handled("tick-1"))
        try await Task.sleep(for: .milliseconds(500))
        await driver.stop()
        let endpoint = try await driver.snapshot()
        compare(kit: kit, endpoint: endpoint, mismatches: driver.mismatches)
        await harness.tearDown()
    }

    @Test("header kinds a producer may send: the kit's text headers correlate and read as the endpoint's")
    func headerKinds() async throws {
        let kinds: [(FieldTable, [String: String])] = [
            (["k": .bool(true)], ["k": "true"]),
            (["k": .int8(-3)], ["k": "-3"]),
            (["k": .uint16(65535)], ["k": "65535"]),
            (["k": .int64(1 << 40)], ["k": "1099511627776"]),
            (["k": .uint64(UInt64.max)], ["k": "18446744073709551615"]),
            (["k": .bytes(Data("raw".utf8))], ["k": "raw"]),
            (["k": .string("s"), "f": .double(1.5), "d": .decimal(scale: 2, value: 150), "t": .timestamp(1_700_000_000),
              "a": .array([.string("x")]), "tb": .table(["x": .string("y")])], ["k": "s"]),
        ]
        let host = SagaTestHost(registry: ProbeSaga.registry(), endpointAddress: DiffSaga.queue)
        for (index, kind) in kinds.enumerated() {
            try await host.deliver(ProbeSaga.ByHeader(note: "\(index)"), messageId: "hdr-\(index)", headers: kind.1)
        }
        let harness = try await Self.diffHarness()
        let driver = EndpointDriver(harness: harness, registry: ProbeSaga.registry(), queue: DiffSaga.queue,
                                    outputs: Self.outputs).start()
        for (index, kind) in kinds.enumerated() {
            try await harness.sendRaw(try MessageCoding.encode(ProbeSaga.ByHeader(note: "\(index)")), properties: BasicProperties(
                contentType: "application/json", headers: kind.0, deliveryMode: .persistent, messageId: "hdr-\(index)",
                type: ProbeSaga.ByHeader.messageType), to: DiffSaga.queue)
            await driver.await(.handled("hdr-\(index)"))
        }
        await driver.stop()
        let endpoint = try await driver.snapshot()
        compare(kit: kitSnapshot(host, errors: []), endpoint: endpoint, mismatches: driver.mismatches)
        await harness.tearDown()
    }
}

extension KitEndpointDifferentialTests {
    @Test("the reference app's payout: fan-out, events by optional batch id, duplicates, overflowing fees, empty transfer id")
    func payout() async throws {
        let registry = MoneyTransferApp.registry()
        func entry(_ id: String) -> PayoutRequested.Transfer {
            PayoutRequested.Transfer(transferId: id, fromAccount: "a", toAccount: "b", amount: 10)
        }
        let steps: [DiffStep] = [
            .message(PayoutRequested(batchId: "b1", transfers: [entry("t1"), entry("t2"), entry("t1"), entry("t3")]), id: "payout-b1"),
            .message(PayoutRequested(batchId: "b1", transfers: [entry("t1")]), id: "payout-b1-again"),
            .message(PayoutRequested(batchId: "b2", transfers: [entry("u1"), entry("")]), id: "payout-b2"),
            .message(TransferCompleted(transferId: "t1", amount: 10, fees: 40, batchId: "b1"), id: "done-t1"),
            .message(TransferCompleted(transferId: "t1", amount: 10, fees: 40, batchId: "b1"), id: "done-t1"),
            .message(TransferCompleted(transferId: "t1", amount: 10, fees: 40, batchId: "b1"), id: "done-t1-other-id"),
            .message(TransferCompleted(transferId: "x", amount: 10, fees: 40), id: "done-no-batch"),
            .message(TransferCompleted(transferId: "t2", amount: 10, fees: Int.max, batchId: "b1"), id: "done-t2-overflow"),
            .message(TransferFailed(transferId: "t2", reason: "closed", refunded: 10, feesLost: 35, batchId: "b1"), id: "failed-t2"),
            .message(TransferCompleted(transferId: "t3", amount: 10, fees: 40, batchId: "b1"), id: "done-t3"),
            .message(TransferCompleted(transferId: "t3", amount: 10, fees: 40, batchId: "b1"), id: "done-t3-late"),
            .message(PayoutRequested(batchId: "b3", transfers: []), id: "payout-empty"),
        ]
        let host = SagaTestHost(registry: registry, endpointAddress: MoneyTransferApp.payoutsQueue)
        let outcomes = await runKit(host, steps)
        let kit = kitSnapshot(host, errors: outcomes)
        let harness = try await EndpointHarness.make()
        let driver = EndpointDriver(harness: harness, registry: registry, queue: MoneyTransferApp.payoutsQueue,
                                    outputs: [MoneyTransferApp.transfersQueue, harness.eventsQueue], database: "payouts").start()
        try await driver.run(steps, kit: outcomes)
        await driver.stop()
        let endpoint = try await driver.snapshot()
        compare(kit: kit, endpoint: endpoint, mismatches: driver.mismatches)
        await harness.tearDown()
    }
}

extension KitEndpointDifferentialTests {
    @Test("a timeout whose handler throws an UnrecoverableError: the kit rethrows and keeps it pending, the endpoint error-queues it naming its saga")
    func failingTimeout() async throws {
        let host = SagaTestHost(registry: ProbeSaga.registry(), endpointAddress: DiffSaga.queue)
        try await host.deliver(ProbeSaga.Start(id: "s"), messageId: "start-s")
        let seeded = try #require(host.storedSaga(of: ProbeSaga.self, correlationId: "s"))
        let timeout = TimeoutRequest(
            timeoutId: "tick-13", saga: SagaInstanceKey(sagaType: ProbeSaga.sagaType, correlationId: "s"),
            dueAt: host.now, type: ProbeSaga.Tick.messageType, body: try MessageCoding.encode(ProbeSaga.Tick(n: 13)))
        await #expect(throws: DiffInvalid.self) { try await host.deliver(timeout.asIncomingMessage()) }

        let harness = try await Self.diffHarness()
        let driver = EndpointDriver(harness: harness, registry: ProbeSaga.registry(), queue: DiffSaga.queue,
                                    outputs: Self.outputs)
        let now = Date()
        try await harness.withStore("diff") { store in
            try store.insertSaga(SagaRecord(sagaType: ProbeSaga.sagaType, correlationId: "s", sagaId: seeded.sagaId,
                                            state: seeded.state, version: 1, createdAt: now, updatedAt: now))
            try store.scheduleTimeout(TimeoutRecord(
                timeoutId: timeout.timeoutId, sagaType: timeout.saga.sagaType, correlationId: timeout.saga.correlationId,
                dueAt: now, messageType: timeout.type, body: timeout.body, createdAt: now))
        }
        driver.start()
        let copy = try #require(try await harness.errorMessages(of: DiffSaga.queue, count: 1).first)
        await driver.stop()
        #expect(copy.properties.messageId == "tick-13")
        #expect(copy.properties.type == ProbeSaga.Tick.messageType)
        #expect(copy.properties.correlationId == "s")
        #expect(copy.header("x-error-type") == "DiffInvalid")
        #expect(copy.intHeader("x-attempts") == 1)
        #expect(copy.header("x-original-queue") == DiffSaga.queue)
        #expect(copy.header("x-saga-timeout-saga-type") == ProbeSaga.sagaType)
        #expect(copy.header("x-saga-timeout-correlation-id") == "s")
        #expect(copy.header("x-saga-timeout-saga-id") == seeded.sagaId)
        #expect(try await harness.rowCount("diff", "timeouts") == 0, "its row is deleted")
        #expect(try await harness.state(ProbeSaga.self, "s", in: "diff")?.seen == 0, "the saga stays live, unchanged")
        await harness.tearDown()
    }
}
