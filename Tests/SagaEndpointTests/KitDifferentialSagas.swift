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

// The sagas the differential tests (`KitEndpointDifferentialTests`) run through both `SagaTestHost` and a
// real `SagaEndpoint`.
// MARK: - The sagas

struct DiffBoom: Error {}
struct DiffInvalid: UnrecoverableError {}

struct DiffSaga: Saga {
    static let sagaType = "Diff"
    static let queue = "diff"
    static let out = "diff.out"
    static let replies = "diff.replies"
    static let exchange = "diff.events"
    static let seen = "diff.seen"

    var id: String
    var total = 0
    var log: [String] = []
    var pings = 0

    struct Open: Message { static let messageType = "diff.Open"; var id: String; var note: String }
    struct Ask: Message { static let messageType = "diff.Ask"; var id: String }
    struct Step: Message { static let messageType = "diff.Step"; var id: String; var n: Int }
    struct Late: Message { static let messageType = "diff.Late"; var id: String }
    struct Early: Message { static let messageType = "diff.Early"; var id: String }
    struct Echo: Message { static let messageType = "diff.Echo"; var text: String }
    struct Tagged: Message { static let messageType = "diff.Tagged"; var batch: String?; var n: Int }
    struct Ping: Message { static let messageType = "diff.Ping"; var n: Int }
    struct Cmd: Message { static let messageType = "diff.Cmd"; var id: String; var what: String }
    struct Opened: Message { static let messageType = "diff.Opened"; var id: String }
    struct Closed: Message { static let messageType = "diff.Closed"; var id: String; var total: Int }
    struct Answer: Message { static let messageType = "diff.Answer"; var id: String; var text: String }
    struct Unknown: Message { static let messageType = "diff.Unknown"; var id: String }

    static func define(_ saga: inout SagaDefinition<DiffSaga>) { define(&saga, ping: .milliseconds(400)) }

    static func define(_ saga: inout SagaDefinition<DiffSaga>, ping: Duration,
                       earlyRetry: Duration = .milliseconds(400)) {
        saga.startedBy(Open.self, correlatedBy: \.id, whenExisting: { state, open, context in
            state.log.append("again:\(open.note)")
            try context.send(Cmd(id: state.id, what: "again"), to: out)
        }) { open, context in
            try context.send(Cmd(id: open.id, what: "open"), to: out)
            try context.publish(Opened(id: open.id), to: exchange)
            try context.requestTimeout(after: ping, Ping(n: 1))
            if context.incoming.replyTo != nil {
                try context.replyToOriginator(Answer(id: open.id, text: "opened"))
            }
            return DiffSaga(id: open.id, log: ["open:\(open.note)"])
        }
        saga.handles(Ask.self, correlatedBy: \.id, whenNotFound: { ask, context in
            try context.send(Unknown(id: ask.id), to: out)
            try context.reply(Answer(id: ask.id, text: "unknown"))
        }) { state, ask, context in
            try context.reply(Answer(id: ask.id, text: "known:\(state.total)"))
        }
        saga.handles(Step.self, correlatedBy: \.id, whenNotFound: .errorQueue) { state, step, context in
            switch step.n {
            case -1: throw DiffBoom()
            case -2: throw DiffInvalid()
            case -3: try context.replyToOriginator(Answer(id: state.id, text: "to originator"))
            case -4: try context.send(Cmd(id: state.id, what: "nowhere"), to: "")
            case 0:
                try context.publish(Closed(id: state.id, total: state.total), to: exchange)
                try context.requestTimeout(after: .milliseconds(100), Ping(n: 99))
                try context.markComplete()
            default:
                state.total += step.n
                state.log.append("step:\(step.n)")
                try context.send(Cmd(id: state.id, what: "step\(step.n)"), to: out,
                                 messageId: step.n == 7 ? "fixed-\(state.id)" : nil)
            }
        }
        saga.handles(Late.self, correlatedBy: \.id) { state, _, _ in
            state.log.append("late")
        }
        saga.handles(Early.self, correlatedBy: \.id,
                     whenNotFound: .retryLater(attempts: 2, delay: earlyRetry)) { state, _, context in
            state.log.append("early")
            try context.send(Cmd(id: state.id, what: "early"), to: out)
        }
        saga.handles(Echo.self, correlatedBy: .correlationId) { state, echo, context in
            state.log.append("echo:\(echo.text)")
            try context.reply(Answer(id: state.id, text: echo.text))
        }
        saga.handles(Tagged.self, correlatedBy: .optionalProperty(\.batch)) { state, tagged, _ in
            state.total += tagged.n
        }
        let delay = ping
        saga.handlesTimeout(Ping.self) { state, ping, context in
            state.pings += 1
            try context.send(Cmd(id: state.id, what: "ping\(ping.n)"), to: out)
            if state.pings < 2 {
                try context.requestTimeout(after: delay, Ping(n: ping.n + 1))
            }
        }
    }

    /// `earlyRetry`: the delay of `Early`'s `retryLater` (a test whose steps hang on it under load may
    /// widen it).
    static func registry(ping: Duration = .seconds(3600), earlyRetry: Duration = .milliseconds(400)) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(DiffSaga.self) { DiffSaga.define(&$0, ping: ping, earlyRetry: earlyRetry) }
        // A stateless handler beside the saga's route for the same type.
        registry.handle(Late.self) { late, context in
            if late.id == "stateless-boom" { throw DiffInvalid() }
            try context.send(Cmd(id: late.id, what: "stateless"), to: out)
        }
        return registry
    }
}

// MARK: - What a handler sees of its message: deliveries, parked retries, timeouts handed over by the store

struct ProbeSaga: Saga {
    static let sagaType = "Probe"
    var id: String
    var seen = 0

    /// The incoming message as the handler saw it.
    struct View: Codable, Equatable, Sendable {
        var messageId: String
        var type: String
        var correlationId: String?
        var replyTo: String?
        var headers: [String: String]
        var queue: String
        var isTimeout: Bool

        init(_ context: HandlerContext) {
            let incoming = context.incoming
            messageId = incoming.messageId
            type = incoming.type
            correlationId = incoming.correlationId
            replyTo = incoming.replyTo
            headers = incoming.headers
            queue = incoming.queue
            isTimeout = incoming.timeoutTarget != nil
        }
    }

    struct Start: Message { static let messageType = "probe.Start"; var id: String }
    struct See: Message { static let messageType = "probe.See"; var id: String }
    struct ByHeader: Message { static let messageType = "probe.ByHeader"; var note: String }
    struct Tick: Message { static let messageType = "probe.Tick"; var n: Int }
    struct Seen: Message { static let messageType = "probe.Seen"; var view: View }

    static func define(_ saga: inout SagaDefinition<ProbeSaga>) {
        saga.startedBy(Start.self, correlatedBy: \.id) { start, context in
            try context.send(Seen(view: View(context)), to: DiffSaga.out)
            return ProbeSaga(id: start.id)
        }
        saga.handles(See.self, correlatedBy: \.id,
                     whenNotFound: .retryLater(attempts: 3, delay: .milliseconds(300))) { state, _, context in
            state.seen += 1
            try context.send(Seen(view: View(context)), to: DiffSaga.out)
        }
        saga.startedBy(ByHeader.self, correlatedBy: .custom("k header") { _, envelope in envelope.headers["k"] }) { _, context in
            try context.send(Seen(view: View(context)), to: DiffSaga.out)
            return ProbeSaga(id: context.saga!.correlationId)
        }
        saga.handlesTimeout(Tick.self) { state, tick, context in
            if tick.n == 13 { throw DiffInvalid() }
            state.seen += 1
            try context.send(Seen(view: View(context)), to: DiffSaga.out)
        }
    }

    static func registry() -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(ProbeSaga.self)
        return registry
    }
}
