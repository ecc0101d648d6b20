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

// Differential tests: the same saga definitions and the same message sequences run through `SagaTestHost`
// (in memory) and through a real `SagaEndpoint` on the broker, and what each did is compared: the messages
// emitted (id, type, destination, correlation id, reply_to, headers, body), what went to the error queue and
// as what, the live sagas' states and versions, pending timeouts and the inbox.

// MARK: - The tests

@Suite("Differential: SagaTestHost against a real SagaEndpoint", .timeLimit(.minutes(6)))
struct KitEndpointDifferentialTests {
    static func diffHarness() async throws -> EndpointHarness {
        let harness = try await EndpointHarness.make()
        for queue in [DiffSaga.queue, DiffSaga.out, DiffSaga.replies, DiffSaga.seen] {
            try await harness.declareQueue(queue)
        }
        try await harness.connection.declareExchange(ExchangeDeclaration(name: DiffSaga.exchange, kind: .topic))
        try await harness.connection.bind(BindingDeclaration(source: DiffSaga.exchange, destination: DiffSaga.seen,
                                                             routingKey: "#"))
        return harness
    }

    static let outputs = [DiffSaga.out, DiffSaga.replies, DiffSaga.seen]

    /// Runs `steps` through both and compares everything.
    @discardableResult
    static func differential(_ steps: [DiffStep], registry: HandlerRegistry = DiffSaga.registry(),
                             prepareKit: (SagaTestHost) throws -> Void = { _ in },
                             sourceLocation: SourceLocation = #_sourceLocation) async throws
        -> (kit: DiffSnapshot, endpoint: DiffSnapshot, driver: EndpointDriver) {
        let host = SagaTestHost(registry: registry, endpointAddress: DiffSaga.queue)
        try prepareKit(host)
        let outcomes = await runKit(host, steps)
        let kit = kitSnapshot(host, errors: outcomes)

        let harness = try await diffHarness()
        let driver = EndpointDriver(harness: harness, registry: registry, queue: DiffSaga.queue, outputs: outputs).start()
        try await driver.run(steps, kit: outcomes)
        await driver.stop()
        let endpoint = try await driver.snapshot()
        compare(kit: kit, endpoint: endpoint, mismatches: driver.mismatches, sourceLocation: sourceLocation)
        await harness.tearDown()
        return (kit, endpoint, driver)
    }

    @Test("a saga's life: start with reply_to, whenExisting, duplicates, whenNotFound, timeouts, completion, late messages")
    func lifecycle() async throws {
        try await Self.differential([
            .message(DiffSaga.Open(id: "a", note: "first"), id: "open-a", correlationId: "client-a", replyTo: DiffSaga.replies),
            // Two pings, 2 s apart; the second asks for no more.
            .advance(.milliseconds(4500)),
            .message(DiffSaga.Open(id: "a", note: "first"), id: "open-a", correlationId: "client-a", replyTo: DiffSaga.replies),
            .message(DiffSaga.Open(id: "a", note: "second"), id: "open-a-2"),
            .message(DiffSaga.Ask(id: "a"), id: "ask-a", correlationId: "q-a", replyTo: DiffSaga.replies),
            .message(DiffSaga.Ask(id: "nobody"), id: "ask-nobody", correlationId: "q-n", replyTo: DiffSaga.replies),
            .message(DiffSaga.Ask(id: "nobody"), id: "ask-nobody", correlationId: "q-n", replyTo: DiffSaga.replies),
            .message(DiffSaga.Step(id: "a", n: 5), id: "step-a-5"),
            .message(DiffSaga.Step(id: "a", n: 7), id: "step-a-7"),
            .message(DiffSaga.Late(id: "nobody"), id: "late-nobody"),
            .message(DiffSaga.Echo(text: "hi"), id: "echo-a", correlationId: "a", replyTo: DiffSaga.replies),
            .message(DiffSaga.Tagged(batch: nil, n: 100), id: "tagged-none"),
            .message(DiffSaga.Tagged(batch: "a", n: 1), id: "tagged-a"),
            .message(DiffSaga.Step(id: "a", n: -3), id: "step-a-orig"),
            // Completes, and asks for a timeout in the same step: it never fires.
            .message(DiffSaga.Step(id: "a", n: 0), id: "step-a-0"),
            .advance(.milliseconds(500)),
            .message(DiffSaga.Late(id: "a"), id: "late-a"),
            .message(DiffSaga.Ask(id: "a"), id: "ask-a-after", correlationId: "q-a2", replyTo: DiffSaga.replies),
            .message(DiffSaga.Step(id: "a", n: 3), id: "step-a-after"),
            .message(DiffSaga.Step(id: "a", n: 3), id: "step-a-after"),
            .message(DiffSaga.Open(id: "a", note: "reborn"), id: "open-a-3"),
        ], registry: DiffSaga.registry(ping: .seconds(2)))
    }

    @Test("failures: handler throws, UnrecoverableError, no reply_to, no handler, bad bodies, no correlation id")
    func failures() async throws {
        let (_, _, driver) = try await Self.differential([
            .message(DiffSaga.Open(id: "f", note: "x"), id: "open-f"),
            .message(DiffSaga.Step(id: "f", n: -1), id: "step-throws"),
            .message(DiffSaga.Step(id: "f", n: -2), id: "step-invalid"),
            .message(DiffSaga.Echo(text: "nobody to answer"), id: "echo-no-reply-to", correlationId: "f"),
            .message(DiffSaga.Step(id: "f", n: -3), id: "step-no-originator"),
            .message(DiffSaga.Ask(id: "ghost"), id: "ask-ghost-no-reply-to"),
            .raw(type: "diff.Nobody", body: "{}", id: "no-handler"),
            .raw(type: DiffSaga.Step.messageType, body: "{not json", id: "corrupt"),
            .raw(type: DiffSaga.Step.messageType, body: #"{"id":"f"}"#, id: "missing-field"),
            .raw(type: DiffSaga.Step.messageType, body: #"{"id":"f","n":"two"}"#, id: "wrong-type"),
            .message(DiffSaga.Step(id: "", n: 1), id: "empty-correlation"),
            .message(DiffSaga.Echo(text: "no correlation"), id: "echo-no-correlation", replyTo: DiffSaga.replies),
            .raw(type: DiffSaga.Ping.messageType, body: #"{"n":1}"#, id: "ping-from-outside"),
            .message(DiffSaga.Step(id: "f", n: -4), id: "step-to-no-queue"),
            .message(DiffSaga.Late(id: "stateless-boom"), id: "stateless-boom"),
            .raw(type: DiffSaga.Late.messageType, body: #"{"id":"f"}"#, id: ""),
            .message(DiffSaga.Step(id: "f", n: 2), id: "step-f-2"),
        ])
        // The error-queue copies say how often the handler ran.
        let copies = Dictionary(driver.lastErrorCopies.map { ($0.properties.messageId ?? "", $0) }) { a, _ in a }
        #expect(copies["step-throws"]?.intHeader("x-attempts") == 5, "3 immediate retries + 1 delayed + the first")
        #expect(copies["step-invalid"]?.intHeader("x-attempts") == 1)
        #expect(copies["step-invalid"]?.header("x-error-type") == "DiffInvalid")
        #expect(copies["step-throws"]?.header("x-error-type") == "DiffBoom")
    }

    @Test("not-found policies: errorQueue, retryLater overtaken by its start, retryLater that gives up, discard")
    func notFoundPolicies() async throws {
        try await Self.differential([
            .message(DiffSaga.Step(id: "none", n: 1), id: "step-none"),
            .message(DiffSaga.Step(id: "none", n: 1), id: "step-none"),
            .message(DiffSaga.Early(id: "b"), id: "early-b"),
            .advance(.milliseconds(450)),
            .message(DiffSaga.Open(id: "b", note: "b"), id: "open-b"),
            .advance(.milliseconds(450)),
            .message(DiffSaga.Early(id: "never"), id: "early-never"),
            .advance(.milliseconds(450)),
            .advance(.milliseconds(450)),
            .message(DiffSaga.Late(id: "gone"), id: "late-gone"),
        ], registry: DiffSaga.registry(ping: .milliseconds(400)))
    }

    @Test("a seeded state handles the next messages as the state reached by messages does")
    func seeding() async throws {
        let prefix: [DiffStep] = [
            .message(DiffSaga.Open(id: "s", note: "seed"), id: "open-s", correlationId: "client-s", replyTo: DiffSaga.replies),
            .message(DiffSaga.Step(id: "s", n: 4), id: "step-s-4"),
        ]
        let rest: [DiffStep] = [
            .message(DiffSaga.Step(id: "s", n: 2), id: "step-s-2"),
            .message(DiffSaga.Ask(id: "s"), id: "ask-s", correlationId: "q-s", replyTo: DiffSaga.replies),
            .message(DiffSaga.Step(id: "s", n: -3), id: "step-s-orig"),
            .message(DiffSaga.Step(id: "s", n: 0), id: "step-s-0"),
        ]
        // The kit: the state the prefix leads to, seeded.
        let reached = SagaTestHost(registry: DiffSaga.registry(), endpointAddress: DiffSaga.queue)
        _ = await runKit(reached, prefix)
        let state = try #require(reached.state(of: DiffSaga.self, correlationId: "s"))
        let seeded = SagaTestHost(registry: DiffSaga.registry(), endpointAddress: DiffSaga.queue)
        try seeded.seed(DiffSaga.self, correlationId: "s", state: state,
                        originator: Originator(replyTo: DiffSaga.replies, correlationId: "client-s"))
        let outcomes = await runKit(seeded, rest)
        let kit = kitSnapshot(seeded, errors: outcomes)

        // The endpoint: reached by the messages.
        let harness = try await Self.diffHarness()
        let driver = EndpointDriver(harness: harness, registry: DiffSaga.registry(), queue: DiffSaga.queue, outputs: Self.outputs).start()
        let prefixOutcomes = await runKit(SagaTestHost(registry: DiffSaga.registry(), endpointAddress: DiffSaga.queue), prefix)
        try await driver.run(prefix, kit: prefixOutcomes)
        for output in Self.outputs { _ = try await harness.drain(output, quietFor: .milliseconds(500)) }
        try await driver.run(rest, kit: outcomes)
        await driver.stop()
        var endpoint = try await driver.snapshot()
        // The prefix's inbox rows and its pending Ping are the endpoint's only.
        endpoint.inbox.subtract(["open-s", "step-s-4"])
        compare(kit: kit, endpoint: endpoint, mismatches: driver.mismatches)
        await harness.tearDown()
    }

    @Test("the reference app's transfer: debit, duplicate reply, unanswered credit re-sent, completion")
    func transfer() async throws {
        let registry = MoneyTransferApp.registry(bankTimeout: .milliseconds(600))
        let steps: [DiffStep] = [
            .message(TransferRequested(transferId: "t-1", fromAccount: "alice", toAccount: "bob", amount: 500),
                     id: "req-t-1"),
            .message(AccountDebited(transferId: "t-1", account: "alice", amount: 500, fee: 25), id: "debited-t-1",
                     correlationId: "t-1"),
            .message(AccountDebited(transferId: "t-1", account: "alice", amount: 500, fee: 25), id: "debited-t-1",
                     correlationId: "t-1"),
            .advance(.milliseconds(700)),
            .message(AccountCredited(transferId: "t-1", account: "bob", amount: 500, fee: 15), id: "credited-t-1",
                     correlationId: "t-1"),
            .message(TransferRequested(transferId: "t-2", fromAccount: "carol", toAccount: "carol", amount: 1),
                     id: "req-t-2"),
            .message(AccountCredited(transferId: "t-9", account: "bob", amount: 1, fee: 15), id: "credited-t-9",
                     correlationId: "t-9"),
        ]
        let host = SagaTestHost(registry: registry, endpointAddress: MoneyTransferApp.transfersQueue)
        let outcomes = await runKit(host, steps)
        let kit = kitSnapshot(host, errors: outcomes)
        let harness = try await EndpointHarness.make()
        let driver = EndpointDriver(harness: harness, registry: registry, queue: MoneyTransferApp.transfersQueue,
                                    outputs: ["bank", harness.eventsQueue],
                                    database: "transfers").start()
        try await driver.run(steps, kit: outcomes)
        await driver.stop()
        let endpoint = try await driver.snapshot()
        compare(kit: kit, endpoint: endpoint, mismatches: driver.mismatches)
        await harness.tearDown()
    }
}

extension KitEndpointDifferentialTests {
    @Test("a stored state that no longer decodes: CorruptSagaState in both, the state left as it was")
    func corruptState() async throws {
        let json = #"{"id":"c","log":[],"pings":0}"#
        let steps: [DiffStep] = [
            .message(DiffSaga.Step(id: "c", n: 1), id: "step-c"),
            .message(DiffSaga.Open(id: "c", note: "again"), id: "open-c"),
            .message(DiffSaga.Ask(id: "c"), id: "ask-c", replyTo: DiffSaga.replies),
        ]
        let host = SagaTestHost(registry: DiffSaga.registry(), endpointAddress: DiffSaga.queue)
        let seeded = try host.seed(DiffSaga.self, correlationId: "c", stateJSON: json)
        let outcomes = await runKit(host, steps)
        let kit = kitSnapshot(host, errors: outcomes)

        let harness = try await Self.diffHarness()
        let driver = EndpointDriver(harness: harness, registry: DiffSaga.registry(), queue: DiffSaga.queue, outputs: Self.outputs)
        let now = Date()
        try await harness.withStore("diff") { store in
            try store.insertSaga(SagaRecord(sagaType: DiffSaga.sagaType, correlationId: "c", sagaId: seeded.sagaId,
                                            state: Data(json.utf8), version: 1, originatorReplyTo: nil,
                                            originatorCorrelationId: nil, createdAt: now, updatedAt: now))
        }
        driver.start()
        try await driver.run(steps, kit: outcomes)
        await driver.stop()
        let endpoint = try await driver.snapshot()
        compare(kit: kit, endpoint: endpoint, mismatches: driver.mismatches)
        await harness.tearDown()
    }
}
