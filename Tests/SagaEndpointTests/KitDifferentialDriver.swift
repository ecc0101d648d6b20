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

// Running one scenario through `SagaTestHost` and through a real `SagaEndpoint`, and comparing what each
// did (`KitEndpointDifferentialTests`).
// MARK: - Scenarios

/// One step of a scenario: a raw delivery to the endpoint's input queue, or time passing.
enum DiffStep {
    case deliver(IncomingMessage)
    case advance(Duration)

    static func message<M: Message>(_ message: M, id: String, correlationId: String? = nil, replyTo: String? = nil,
                                    headers: [String: String] = [:]) -> DiffStep {
        .deliver(IncomingMessage(messageId: id, type: M.messageType, body: try! MessageCoding.encode(message),
                                 correlationId: correlationId, replyTo: replyTo, headers: headers, queue: ""))
    }

    static func raw(type: String, body: String, id: String, correlationId: String? = nil, replyTo: String? = nil) -> DiffStep {
        .deliver(IncomingMessage(messageId: id, type: type, body: Data(body.utf8), correlationId: correlationId,
                                 replyTo: replyTo, headers: [:], queue: ""))
    }
}

/// What the kit said one delivery came to, and so what to wait for on the endpoint.
enum KitOutcome: CustomStringConvertible {
    case handled(String)
    case duplicate(String)
    case deferred(String)
    /// To the error queue, with the `x-error-type` the endpoint would give it.
    case errorQueued(String, kind: String)

    var description: String {
        switch self {
        case .handled(let id): "handled \(id)"
        case .duplicate(let id): "duplicate \(id)"
        case .deferred(let id): "deferred \(id)"
        case .errorQueued(let id, let kind): "error queue \(id) (\(kind))"
        }
    }
}

/// Everything either side ended with.
struct DiffSnapshot {
    var emitted: [WireView] = []
    /// (message id, x-error-type)
    var errorQueue: [String] = []
    /// "type/correlation id v<version> <state JSON>"
    var sagas: [String] = []
    /// "timeout id type body" of saga timeouts
    var timeouts: [String] = []
    var inbox: Set<String> = []
}

/// The `x-error-type` the endpoint gives the error the kit threw.
func endpointErrorKind(_ error: any Error) -> String {
    if let error = error as? SagaTestHostError {
        switch error {
        case .missingMessageId: return "MissingMessageId"
        case .invalidOutgoingMessage: return "InvalidOutgoingMessage"
        case .bodyTooLarge: return "BodyTooLarge"
        default: return "\(error)"
        }
    }
    return BatchPipeline.errorKind(error)
}

/// Runs `steps` through the kit, returning each delivery's outcome (timeouts and deferred retries fired by
/// an advance included, in order).
func runKit(_ host: SagaTestHost, _ steps: [DiffStep]) async -> [(step: Int, outcome: KitOutcome)] {
    var outcomes: [(Int, KitOutcome)] = []
    func outcome(of result: DeliveryResult) -> KitOutcome {
        switch result.disposition {
        case .handled: .handled(result.message.messageId)
        case .duplicate: .duplicate(result.message.messageId)
        case .deferred: .deferred(result.message.messageId)
        case .deadLettered: .errorQueued(result.message.messageId, kind: "SagaNotFound")
        }
    }
    for (index, step) in steps.enumerated() {
        switch step {
        case .deliver(var incoming):
            incoming.queue = host.endpointAddress
            do {
                outcomes.append((index, outcome(of: try await host.deliver(incoming))))
            } catch {
                outcomes.append((index, .errorQueued(incoming.messageId, kind: endpointErrorKind(error))))
            }
        case .advance(let duration):
            do {
                let advanced = try await host.advanceTime(by: duration)
                for delivery in advanced.deliveries { outcomes.append((index, outcome(of: delivery))) }
            } catch {
                Issue.record("kit: advanceTime threw \(error)")
            }
        }
    }
    return outcomes
}

func kitSnapshot(_ host: SagaTestHost, errors: [(step: Int, outcome: KitOutcome)]) -> DiffSnapshot {
    var snapshot = DiffSnapshot()
    snapshot.emitted = host.emitted.map(WireView.init)
    snapshot.errorQueue = errors.compactMap {
        if case .errorQueued(let id, let kind) = $0.outcome { "\(id) \(kind)" } else { nil }
    }.sorted()
    snapshot.sagas = host.persistence.contents.sagas.values.map {
        "\($0.key) v\($0.version) \(String(decoding: $0.state, as: UTF8.self))"
    }.sorted()
    snapshot.timeouts = host.pendingTimeouts.map { "\($0.timeoutId) \($0.type) \(String(decoding: $0.body, as: UTF8.self))" }.sorted()
    snapshot.inbox = host.persistence.contents.processedMessageIds
    return snapshot
}

/// An endpoint on the broker, driven step by step.
final class EndpointDriver: @unchecked Sendable {
    let harness: EndpointHarness
    let queue: String
    let database: String
    let outputs: [String]
    let metrics = TestMetrics()
    var endpoint: Task<Void, any Error>?
    var mismatches: [String] = []
    private var duplicates = 0
    private var errorCopies = 0

    init(harness: EndpointHarness, registry: HandlerRegistry, queue: String, outputs: [String],
         database: String = "diff", configure: @escaping (inout EndpointConfiguration) -> Void = { _ in }) {
        self.harness = harness
        self.queue = queue
        self.database = database
        self.outputs = outputs
        self.registry = registry
        self.configure = configure
    }

    let registry: HandlerRegistry
    let configure: (inout EndpointConfiguration) -> Void

    @discardableResult
    func start() -> Self {
        endpoint = harness.startEndpoint(registry, queues: [queue], database: database, metrics: metrics) { configuration in
            configuration.delayedRetries = [.milliseconds(200)]
            self.configure(&configuration)
        }
        return self
    }

    func send(_ incoming: IncomingMessage) async throws {
        try await harness.sendRaw(incoming.body, properties: BasicProperties(
            contentType: "application/json",
            headers: incoming.headers.isEmpty ? nil : incoming.headers.mapValues { .string($0) },
            deliveryMode: .persistent, correlationId: incoming.correlationId, replyTo: incoming.replyTo,
            messageId: incoming.messageId, type: incoming.type), to: queue)
    }

    private func inboxContains(_ id: String) async throws -> Bool {
        try await harness.withStore(database) { try $0.inboxContains(messageId: id) }
    }

    /// Waits until the endpoint did with the message what the kit did; records a mismatch otherwise.
    func await(_ outcome: KitOutcome, timeout: Duration = .seconds(20)) async {
        do {
            switch outcome {
            case .handled(let id):
                try await waitUntil(timeout: timeout) { try await self.inboxContains(id) }
            case .duplicate:
                duplicates += 1
                let expected = duplicates
                try await waitUntil(timeout: timeout) {
                    ((try? self.metrics.expectCounter("saga_messages_deduplicated_total"))?.totalValue ?? 0) >= expected
                }
            case .deferred(let id):
                try await waitUntil(timeout: timeout) {
                    if try await self.harness.rowCount(self.database, "timeouts", where: "timeout_id LIKE 'retry:\(id):%'") > 0 {
                        return true
                    }
                    return try await self.inboxContains(id)
                }
            case .errorQueued:
                errorCopies += 1
                let expected = errorCopies
                try await waitUntil(timeout: timeout) { try await self.harness.depth(self.queue + ".error") >= expected }
            }
        } catch {
            mismatches.append("endpoint never reached the kit's outcome '\(outcome)': \(error)")
        }
    }

    func run(_ steps: [DiffStep], kit outcomes: [(step: Int, outcome: KitOutcome)]) async throws {
        for (index, step) in steps.enumerated() {
            switch step {
            case .deliver(let incoming):
                try await send(incoming)
            case .advance(let duration):
                try await Task.sleep(for: duration)
            }
            let expected = outcomes.filter { $0.step == index }.map(\.outcome)
            for outcome in expected { await self.await(outcome) }
            if case .advance = step, expected.isEmpty {
                // Nothing fell due in the kit: give the endpoint time to show whether something does.
                try await Task.sleep(for: .seconds(1))
            }
        }
        // Let anything in flight settle.
        try await Task.sleep(for: .milliseconds(700))
    }

    func snapshot() async throws -> DiffSnapshot {
        var snapshot = DiffSnapshot()
        for output in outputs {
            snapshot.emitted += try await harness.drain(output, quietFor: .milliseconds(700)).map(WireView.init)
        }
        let copies = try await harness.drain(queue + ".error", quietFor: .milliseconds(700))
        snapshot.errorQueue = copies.map { "\($0.properties.messageId ?? "-") \($0.header("x-error-type") ?? "-")" }.sorted()
        lastErrorCopies = copies
        snapshot.sagas = try await harness.withStore(database) { store in
            try store.listSagas().map { "\($0.sagaType)/\($0.correlationId) v\($0.version) \(String(decoding: $0.state, as: UTF8.self))" }
        }.sorted()
        snapshot.timeouts = try await harness.withStore(database) { store in
            try store.connection.query("SELECT timeout_id, message_type, body FROM timeouts WHERE saga_type != ''").map {
                "\($0[0].textValue ?? "") \($0[1].textValue ?? "") \(String(decoding: $0[2].blobValue ?? Data(($0[2].textValue ?? "").utf8), as: UTF8.self))"
            }
        }.sorted()
        snapshot.inbox = Set(try await harness.withStore(database) { store in
            try store.connection.query("SELECT message_id FROM inbox").compactMap { $0[0].textValue }
        })
        return snapshot
    }

    var lastErrorCopies: [AMQPDelivery] = []

    func stop() async {
        if let endpoint { await harness.stop(endpoint) }
        endpoint = nil
    }
}

/// Records an issue for every difference between the two snapshots.
func compare(kit: DiffSnapshot, endpoint: DiffSnapshot, mismatches: [String],
             sourceLocation: SourceLocation = #_sourceLocation) {
    for mismatch in mismatches { Issue.record(Comment(rawValue: mismatch), sourceLocation: sourceLocation) }
    let kitEmitted = kit.emitted.map(\.description).sorted()
    let endpointEmitted = endpoint.emitted.map(\.description).sorted()
    #expect(endpointEmitted == kitEmitted, "emitted messages differ:\nkit only:\n\(kitEmitted.filter { !endpointEmitted.contains($0) }.joined(separator: "\n"))\nendpoint only:\n\(endpointEmitted.filter { !kitEmitted.contains($0) }.joined(separator: "\n"))", sourceLocation: sourceLocation)
    for destination in Set(kit.emitted.map(\.destination)) {
        #expect(endpoint.emitted.filter { $0.destination == destination }.map(\.messageId)
                    == kit.emitted.filter { $0.destination == destination }.map(\.messageId),
                "order to \(destination)", sourceLocation: sourceLocation)
    }
    #expect(endpoint.errorQueue == kit.errorQueue, "error queue", sourceLocation: sourceLocation)
    #expect(endpoint.sagas == kit.sagas, "live sagas", sourceLocation: sourceLocation)
    #expect(endpoint.timeouts == kit.timeouts, "pending timeouts", sourceLocation: sourceLocation)
    #expect(endpoint.inbox == kit.inbox, "inbox: kit only \(kit.inbox.subtracting(endpoint.inbox)), endpoint only \(endpoint.inbox.subtracting(kit.inbox))",
            sourceLocation: sourceLocation)
}

// MARK: - Bursts: many messages at once, so that batches fill and handlers run ahead of the commit

extension EndpointDriver {
    /// Publishes every delivery of `steps` at once (one confirm round), then waits for the kit's outcomes.
    func burst(_ steps: [DiffStep], kit outcomes: [(step: Int, outcome: KitOutcome)]) async throws {
        let requests: [PublishRequest] = steps.compactMap { step in
            guard case .deliver(let incoming) = step else { return nil }
            return .toQueue(queue, AMQPMessage(body: incoming.body, properties: BasicProperties(
                contentType: "application/json",
                headers: incoming.headers.isEmpty ? nil : incoming.headers.mapValues { .string($0) },
                deliveryMode: .persistent, correlationId: incoming.correlationId, replyTo: incoming.replyTo,
                messageId: incoming.messageId, type: incoming.type)))
        }
        for outcome in await harness.connection.publish(requests) { #expect(outcome == .confirmed) }
        for outcome in outcomes.map(\.outcome) { await self.await(outcome, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(700))
    }
}
