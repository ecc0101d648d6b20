public import Foundation
public import Sagas
import Testing
public import Tracing

/// Runs sagas and stateless handlers exactly as the endpoint does, in memory, on a virtual clock.
///
/// Each delivery goes through the endpoint's pipeline: `checkHandled` → inbox dedupe by message id →
/// stateless handlers → one "transaction" of `dispatchToSagas` + outbox + timeouts + inbox row. It uses
/// the production `MessageDispatcher`, so correlation, not-found policies, completion and the JSON round
/// trip of messages and state are the real ones: a message or state that cannot be encoded fails the
/// delivery. A delivery that throws is rolled back: nothing stored, nothing emitted, no inbox row.
///
/// Timeouts are stored and fire when `advanceTime` passes their due time, as
/// `TimeoutRequest.asIncomingMessage()` through the same pipeline (inbox included). A completed saga's
/// timeouts are cancelled.
///
/// Not-found policies: `.discard` commits (the message is consumed). `.errorQueue` rolls the delivery back
/// and records it in `deadLetters`. `.retryLater(attempts, delay)` rolls it back and redelivers the same
/// message (same id) `delay` later when time advances, up to `attempts` times, then dead-letters it.
///
/// To test a handler from a given state, or a state an older version stored, `seed` the instance first.
///
/// Not thread-safe; use it from one test. Messages are not routed anywhere: to pass an emitted message
/// on (a command to its handler, a reply back to the saga), deliver it with `deliver(_:)`.
public final class SagaTestHost: EmittedMessages {
    /// 2026-01-01T00:00:00Z, where every host's clock starts unless told otherwise.
    public static let defaultStartDate = Date(timeIntervalSince1970: 1_767_225_600)
    /// The endpoint address (input queue) of a host built without one.
    public static let defaultEndpointAddress = "test-endpoint"

    public let dispatcher: MessageDispatcher
    /// The saga store, timeouts and inbox.
    public let persistence = InMemorySagaPersistence()
    /// The virtual clock.
    public private(set) var now: Date
    /// Every delivery so far, in order (including those made by `advanceTime`).
    public private(set) var history: [DeliveryResult] = []
    /// Messages the endpoint would have moved to its error queue.
    public private(set) var deadLetters: [DeadLetter] = []
    /// Deliveries waiting for a `retryLater` retry.
    public private(set) var deferred: [(message: IncomingMessage, retryAt: Date, retry: Int)] = []
    /// Safety net against a saga that keeps asking for immediate timeouts.
    public var maxDeliveriesPerAdvance = 10_000
    /// The AMQP frame size the endpoint's broker connection negotiates (RabbitMQ's default, 128 KiB): an
    /// emitted message's properties, its headers mostly, must fit in one frame, as the endpoint checks.
    public var frameMax = 131_072
    /// The largest body the endpoint takes from its queues (`EndpointConfiguration.maxBodyBytes`, 1 MiB by
    /// default): it moves a larger one to its error queue unread (`BodyTooLarge`), so `deliver` refuses it.
    /// Timeouts the store hands over are not limited: they never went through a queue.
    public var maxBodyBytes = 1 << 20
    /// When set, handlers run in "handle" spans whose parent is the trace context of the delivered
    /// message's headers, and emitted messages carry the handle span's context, as in the endpoint.
    public var tracer: (any Tracer)?

    /// Instances a delivery completed; a start, or a seed, makes one live again.
    var completed: Set<SagaInstanceKey> = []
    /// The clock as an exact time since `start`. Adding each step's seconds to a `Date` rounded every time,
    /// so steps that add up to a timeout's delay could end short of its due time; due times are compared
    /// with it to the microsecond (a due `Date` is itself a rounded sum).
    private let start: Date
    private var elapsed: Duration = .zero
    private var generatedIds = 0

    public init(registry: HandlerRegistry, endpointAddress: String = SagaTestHost.defaultEndpointAddress,
                startingAt start: Date = SagaTestHost.defaultStartDate) {
        self.dispatcher = MessageDispatcher(registry: registry, endpointAddress: endpointAddress)
        self.now = start
        self.start = start
    }

    /// A host for one saga, defined by its `define`.
    public convenience init<S: Saga>(_ saga: S.Type, endpointAddress: String = SagaTestHost.defaultEndpointAddress,
                                     startingAt start: Date = SagaTestHost.defaultStartDate) {
        var registry = HandlerRegistry()
        registry.register(saga)
        self.init(registry: registry, endpointAddress: endpointAddress, startingAt: start)
    }

    /// A host for one saga with a custom definition (a saga that takes settings).
    public convenience init<S: Saga>(_ saga: S.Type, endpointAddress: String = SagaTestHost.defaultEndpointAddress,
                                     startingAt start: Date = SagaTestHost.defaultStartDate,
                                     define: (inout SagaDefinition<S>) -> Void) {
        var registry = HandlerRegistry()
        registry.register(saga, define: define)
        self.init(registry: registry, endpointAddress: endpointAddress, startingAt: start)
    }

    public var registry: HandlerRegistry { dispatcher.registry }
    public var endpointAddress: String { dispatcher.endpointAddress }

    // MARK: Delivering

    /// Delivers `message` (JSON-encoded, AMQP `type` = `M.messageType`) as if consumed from `queue`
    /// (default: the endpoint address). Without `messageId` the host generates `msg-1`, `msg-2`, …
    @discardableResult
    public nonisolated(nonsending) func deliver<M: Message>(
        _ message: M, messageId: String? = nil, correlationId: String? = nil, replyTo: String? = nil,
        headers: [String: String] = [:], queue: String? = nil
    ) async throws -> DeliveryResult {
        try await deliver(IncomingMessage(
            messageId: messageId ?? nextMessageId(), type: M.messageType, body: try MessageCoding.encode(message),
            correlationId: correlationId, replyTo: replyTo, headers: headers, queue: queue ?? endpointAddress
        ))
    }

    /// Delivers a raw envelope: for malformed bodies, unknown types, missing properties.
    @discardableResult
    public nonisolated(nonsending) func deliver(_ incoming: IncomingMessage) async throws -> DeliveryResult {
        try await process(incoming, retry: 0, fromQueue: incoming.timeoutTarget == nil)
    }

    /// Delivers a message some handler emitted (a command to its handler, a reply or an event back to a
    /// saga) with its id, type, body and properties, as if consumed from `queue` (default: the queue it
    /// was sent to, else the endpoint address).
    @discardableResult
    public nonisolated(nonsending) func deliver(_ emitted: OutgoingMessage, queue: String? = nil) async throws -> DeliveryResult {
        try await deliver(IncomingMessage(
            messageId: emitted.messageId, type: emitted.type, body: emitted.body,
            correlationId: emitted.correlationId, replyTo: emitted.replyTo, headers: emitted.headers,
            queue: queue ?? emitted.queue ?? endpointAddress
        ))
    }

    // MARK: Time

    /// Moves the clock forward, delivering every timeout (and deferred retry) that falls due, in due-time
    /// order, each at its due time; timeouts requested meanwhile fire too if due before the end. A
    /// timeout its saga has no route for is dead-lettered, as the endpoint error-queues it, and the advance
    /// goes on. If a delivery throws, the clock stays at its due time, the timeout stays pending and the
    /// error is rethrown (earlier deliveries are in `history`).
    @discardableResult
    public nonisolated(nonsending) func advanceTime(by duration: Duration) async throws -> TimeAdvanceResult {
        // Thrown, not trapped: a trap ended the whole test process, every other test with it.
        guard duration >= .zero else { throw SagaTestHostError.negativeDuration(duration) }
        let target = elapsed + duration
        return try await advance(to: target, date: start.addingTimeInterval(target.timeInterval))
    }

    /// Moves the clock forward to `date`; see `advanceTime(by:)`. A date before `now` throws
    /// `SagaTestHostError.dateInThePast`.
    @discardableResult
    public nonisolated(nonsending) func advanceTime(to date: Date) async throws -> TimeAdvanceResult {
        // Thrown as a negative step is: returning an empty advance read as "nothing was due".
        guard date >= now else { throw SagaTestHostError.dateInThePast(date, now: now) }
        // `>=` on `Date` is `!(<)`, true for NaN, which was then taken as the farthest time and fired every
        // timeout up to 1e20 s.
        guard !date.timeIntervalSinceReferenceDate.isNaN else { throw SagaTestHostError.dateNotANumber(now: now) }
        return try await advance(to: offset(of: date), date: date)
    }

    private nonisolated(nonsending) func advance(to target: Duration, date: Date) async throws -> TimeAdvanceResult {
        let from = now
        var deliveries: [DeliveryResult] = []
        while true {
            // The earliest due timeout; among equal due times, the one requested first.
            var timeout: TimeoutRequest?
            for candidate in persistence.contents.timeouts where offset(of: candidate.dueAt) <= target {
                if timeout == nil || candidate.dueAt < timeout!.dueAt { timeout = candidate }
            }
            let retryIndex = deferred.indices.filter { offset(of: deferred[$0].retryAt) <= target }
                .min { deferred[$0].retryAt < deferred[$1].retryAt }
            // Only when something is still due: exactly the limit delivered is fine.
            if timeout != nil || retryIndex != nil, deliveries.count >= maxDeliveriesPerAdvance {
                throw SagaTestHostError.tooManyDeliveries(limit: maxDeliveriesPerAdvance)
            }
            if let timeout, retryIndex == nil || timeout.dueAt <= deferred[retryIndex!].retryAt {
                moveClock(to: timeout.dueAt)
                deliveries.append(try await fire(timeout))
            } else if let retryIndex {
                let retry = deferred.remove(at: retryIndex)
                moveClock(to: retry.retryAt)
                do {
                    deliveries.append(try await process(retry.message, retry: retry.retry))
                } catch {
                    deferred.insert(retry, at: retryIndex)
                    throw error
                }
            } else {
                break
            }
        }
        elapsed = max(elapsed, target)
        now = max(now, date)
        return TimeAdvanceResult(from: from, to: now, deliveries: deliveries)
    }

    /// A due timeout of a type its saga has no route for (`requestTimeout` takes any message) goes to the
    /// error queue, as the endpoint moves such a due row there (`NoHandler`) before its inbox check: thrown
    /// as `noHandler`, it stayed pending and failed every later advance.
    private nonisolated(nonsending) func fire(_ timeout: TimeoutRequest) async throws -> DeliveryResult {
        let incoming = timeout.asIncomingMessage()
        guard !registry.sagaHandles(type: timeout.type, sagaType: timeout.saga.sagaType) else {
            return try await process(incoming, retry: 0)
        }
        persistence.removeTimeout(id: timeout.timeoutId)
        let reason = "NoHandler: no saga '\(timeout.saga.sagaType)' that handles '\(timeout.type)' is registered"
        deadLetters.append(DeadLetter(message: incoming, reason: reason, at: now))
        return record(DeliveryResult(message: incoming, deliveredAt: now, disposition: .deadLettered(reason: reason),
                                     sagas: [], emitted: [], timeoutsRequested: []))
    }

    /// `date` as a time since `start`, to the microsecond. The endpoint stores any delay a handler asks for
    /// (`.seconds(Int64.max)` as "never"), and converting such a due date to `Int64` microseconds (past
    /// ±292,000 years) trapped, ending the test process at the next `advanceTime`. Past that it is measured
    /// in seconds as a `Double`, held to ±1e20 s (within what `Duration` holds; the clock gets there only
    /// after eleven advances of `Int64.max` seconds); a NaN date is never due. Held to 9.2e18 s instead, just
    /// short of `Int64.max` seconds, a "never" timeout asked for after the clock had moved fired at an
    /// advance of that size, long before it was due.
    private func offset(of date: Date) -> Duration {
        let seconds = date.timeIntervalSince(start)
        let farthest = 1e20
        guard !seconds.isNaN else { return .seconds(farthest) }
        let micros = (seconds * 1e6).rounded()
        if abs(micros) < 9.2e18 { return .microseconds(Int64(micros)) }
        return .seconds(min(max(seconds, -farthest), farthest))
    }

    private func moveClock(to date: Date) {
        elapsed = max(elapsed, offset(of: date))
        now = max(now, date)
    }

    // MARK: Inspection

    /// The live instance's state, decoded from its stored JSON; nil when there is none.
    public func state<S: Saga>(of saga: S.Type, correlationId: String) -> S? {
        guard let stored = storedSaga(of: saga, correlationId: correlationId) else { return nil }
        do {
            return try MessageCoding.decode(S.self, from: stored.state, messageType: S.sagaType)
        } catch {
            Issue.record(error, "the stored state of \(stored.key) does not decode")
            return nil
        }
    }

    /// The stored row of a live instance: JSON state, version, originator, timestamps.
    public func storedSaga<S: Saga>(of saga: S.Type, correlationId: String) -> StoredSaga? {
        persistence.contents.sagas[SagaInstanceKey(sagaType: S.sagaType, correlationId: correlationId)]
    }

    public func isLive<S: Saga>(_ saga: S.Type, correlationId: String) -> Bool {
        storedSaga(of: saga, correlationId: correlationId) != nil
    }

    /// Whether a delivery in this host completed the instance (and it has not been started again).
    public func isCompleted<S: Saga>(_ saga: S.Type, correlationId: String) -> Bool {
        completed.contains(SagaInstanceKey(sagaType: S.sagaType, correlationId: correlationId))
    }

    /// The number of live saga instances (of every type).
    public var liveSagaCount: Int { persistence.contents.sagas.count }

    /// The correlation ids of the live instances of `S`, sorted.
    public func liveSagas<S: Saga>(of saga: S.Type) -> [String] {
        persistence.contents.sagas.keys.filter { $0.sagaType == S.sagaType }.map(\.correlationId).sorted()
    }

    /// Pending timeouts in firing order (due time, then request order).
    public var pendingTimeouts: [TimeoutRequest] {
        persistence.contents.timeouts.enumerated()
            .sorted { ($0.element.dueAt, $0.offset) < ($1.element.dueAt, $1.offset) }
            .map(\.element)
    }

    /// The pending timeouts of one instance, in firing order.
    public func pendingTimeouts<S: Saga>(of saga: S.Type, correlationId: String) -> [TimeoutRequest] {
        let key = SagaInstanceKey(sagaType: S.sagaType, correlationId: correlationId)
        return pendingTimeouts.filter { $0.saga == key }
    }

    /// Everything emitted by committed deliveries so far, in order.
    public var emitted: [OutgoingMessage] { history.flatMap(\.emitted) }

    // MARK: The pipeline

    private func nextMessageId() -> String {
        generatedIds += 1
        return "msg-\(generatedIds)"
    }

    /// `fromQueue`: the message arrives as a delivery from a queue, so the endpoint's checks of a delivery
    /// apply (not to a fired timeout, nor to a deferred retry, which passed them when it first came).
    private nonisolated(nonsending) func process(_ incoming: IncomingMessage, retry: Int,
                                                 fromQueue: Bool = false) async throws -> DeliveryResult {
        guard !incoming.messageId.isEmpty else { throw SagaTestHostError.missingMessageId(type: incoming.type) }
        // The endpoint's `MessageTranslation.incoming`: checked after the id, before the handlers are looked up.
        if fromQueue, incoming.body.count > maxBodyBytes {
            throw SagaTestHostError.bodyTooLarge(messageId: incoming.messageId, type: incoming.type,
                                                 bytes: incoming.body.count, limit: maxBodyBytes)
        }
        try dispatcher.checkHandled(incoming)
        let at = now
        if persistence.hasProcessed(messageId: incoming.messageId) {
            if incoming.timeoutTarget != nil { persistence.removeTimeout(id: incoming.messageId) }
            return record(DeliveryResult(message: incoming, deliveredAt: at, disposition: .duplicate, sagas: [],
                                         emitted: [], timeoutsRequested: []))
        }
        // Stateless handlers run before the transaction (they may be async); their messages are only
        // emitted if the transaction commits.
        let tracing = tracer.map { MessageTracing(tracer: $0, context: MessageTracing.extract(incoming.headers, tracer: $0)) }
        let statelessOutgoing = try await dispatcher.runStatelessHandlers(incoming, now: at, tracing: tracing)

        let snapshot = persistence.contents
        let invocations: [SagaInvocation]
        do {
            invocations = try dispatcher.dispatchToSagas(incoming, persistence: persistence, now: at, tracing: tracing)
        } catch {
            persistence.contents = snapshot
            throw error
        }

        if let policy = invocations.lazy.compactMap(Self.nonDiscardPolicy).first {
            persistence.contents = snapshot
            let disposition: DeliveryResult.Disposition
            switch policy {
            case .retryLater(let attempts, let delay) where retry < attempts:
                let retryAt = at.addingTimeInterval(delay.timeInterval)
                deferred.append((incoming, retryAt, retry + 1))
                disposition = .deferred(retryAt: retryAt, retry: retry + 1)
            case .retryLater(let attempts, _):
                disposition = .deadLettered(reason: "no saga instance after \(attempts) retries")
            default:
                disposition = .deadLettered(reason: "no saga instance (not-found policy: error queue)")
            }
            if case .deadLettered(let reason) = disposition {
                deadLetters.append(DeadLetter(message: incoming, reason: reason, at: at))
            }
            return record(DeliveryResult(message: incoming, deliveredAt: at, disposition: disposition,
                                         sagas: invocations, emitted: [], timeoutsRequested: []))
        }

        // What AMQP cannot carry fails the message for good on the endpoint (to the error queue), before
        // anything of it is stored.
        let emitted = statelessOutgoing + invocations.flatMap(\.outgoing)
        for message in emitted {
            if let reason = message.amqpLimitViolation(frameMax: frameMax) {
                persistence.contents = snapshot
                throw SagaTestHostError.invalidOutgoingMessage(messageId: message.messageId, type: message.type,
                                                               reason: reason)
            }
        }

        // Commit: timeouts, the fired timeout's removal, the inbox row, the outbox.
        let timeouts = invocations.flatMap(\.timeouts)
        persistence.scheduleTimeouts(timeouts)
        if incoming.timeoutTarget != nil { persistence.removeTimeout(id: incoming.messageId) }
        persistence.markProcessed(messageId: incoming.messageId)
        for invocation in invocations {
            switch invocation.outcome {
            case .started: completed.remove(invocation.saga)
            case .completed, .startedAndCompleted: completed.insert(invocation.saga)
            default: break
            }
        }
        return record(DeliveryResult(
            message: incoming, deliveredAt: at, disposition: .handled, sagas: invocations,
            emitted: emitted, timeoutsRequested: timeouts
        ))
    }

    private static func nonDiscardPolicy(_ invocation: SagaInvocation) -> NotFoundPolicy? {
        if case .notFound(let policy) = invocation.outcome, policy != .discard { policy } else { nil }
    }

    private func record(_ result: DeliveryResult) -> DeliveryResult {
        history.append(result)
        return result
    }
}

extension Duration {
    /// Seconds, computed as `HandlerContext.requestTimeout` does so due dates match exactly.
    var timeInterval: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
