import Foundation
import Sagas

// Small sagas and handlers that exercise one runtime guarantee each (the reference app covers the rest).

/// The id of the message a handler (saga type, or `h1`… for stateless handlers) emitted at `position`
/// (`t…` for timeouts) while handling `incoming`: deterministic, so it can be predicted.
func outgoingId(_ incoming: String, _ handler: String, _ position: String) -> String {
    MessageIdentity.derive(from: incoming, handler: handler, position: position)
}

/// An order: started by `Placed`; `Paid` may arrive before it (its not-found policy is a parameter);
/// `Shipped` for no order is discarded (the default); `Cancelled` for no order goes to the error queue;
/// `Close` completes it; `Placed.remindAfterMs` asks for a timeout that sends `ReminderSent`;
/// `StatusRequested` is answered by the order, or by its `whenNotFound` for no order.
struct OrderSaga: Saga, Equatable {
    static let sagaType = "Order"
    static let queue = "orders"
    static let outQueue = "orders.out"

    var orderId: String
    var paid = false
    var reminders = 0

    struct Placed: Message { static let messageType = "test.OrderPlaced"; var orderId: String; var remindAfterMs: Int? }
    struct Paid: Message { static let messageType = "test.PaymentReceived"; var orderId: String }
    struct Shipped: Message { static let messageType = "test.OrderShipped"; var orderId: String }
    struct Cancelled: Message { static let messageType = "test.OrderCancelled"; var orderId: String }
    struct Close: Message { static let messageType = "test.CloseOrder"; var orderId: String }
    struct Remind: Message { static let messageType = "test.OrderReminder" }
    struct ReminderSent: Message { static let messageType = "test.ReminderSent"; var orderId: String }
    /// Asks for an order's status: its saga replies, or its `whenNotFound` replies `known: false`.
    struct StatusRequested: Message { static let messageType = "test.OrderStatusRequested"; var orderId: String }
    struct Status: Message { static let messageType = "test.OrderStatus"; var orderId: String; var known: Bool; var paid: Bool }

    static func define(_ saga: inout SagaDefinition<OrderSaga>) {
        define(&saga, earlyPayment: .retryLater(attempts: 10, delay: .milliseconds(300)))
    }

    static func define(_ saga: inout SagaDefinition<OrderSaga>, earlyPayment: NotFoundPolicy) {
        saga.startedBy(Placed.self, correlatedBy: \.orderId) { placed, context in
            if let delay = placed.remindAfterMs { try context.requestTimeout(after: .milliseconds(delay), Remind()) }
            return OrderSaga(orderId: placed.orderId)
        }
        saga.handles(Paid.self, correlatedBy: \.orderId, whenNotFound: earlyPayment) { order, _, _ in order.paid = true }
        saga.handles(Shipped.self, correlatedBy: \.orderId) { _, _, _ in }
        saga.handles(Cancelled.self, correlatedBy: \.orderId, whenNotFound: .errorQueue) { _, _, context in
            try context.markComplete()
        }
        saga.handles(Close.self, correlatedBy: \.orderId) { _, _, context in try context.markComplete() }
        saga.handles(StatusRequested.self, correlatedBy: \.orderId, whenNotFound: { request, context in
            try context.reply(Status(orderId: request.orderId, known: false, paid: false))
        }) { order, _, context in
            try context.reply(Status(orderId: order.orderId, known: true, paid: order.paid))
        }
        saga.handlesTimeout(Remind.self) { order, _, context in
            order.reminders += 1
            try context.send(ReminderSent(orderId: order.orderId), to: outQueue)
        }
    }

    static func registry(earlyPayment: NotFoundPolicy = .retryLater(attempts: 10, delay: .milliseconds(300))) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(OrderSaga.self) { define(&$0, earlyPayment: earlyPayment) }
        return registry
    }
}

/// A ledger: `Open` sends `Opened` to `ledgers.out` and asks for a timeout in one step, then throws when
/// told to (so nothing of it may remain); `Announce` publishes `Opened` to the `ledgers.events` exchange;
/// `Notify` sends `Opened` to `ledgers.notices` (a queue the tests declare only when they want it routable).
struct LedgerSaga: Saga {
    static let sagaType = "Ledger"
    static let queue = "ledgers"
    static let outQueue = "ledgers.out"
    static let noticesQueue = "ledgers.notices"
    static let eventsExchange = "ledgers.events"

    var ledgerId: String

    struct Open: Message { static let messageType = "test.OpenLedger"; var ledgerId: String; var fail: Bool }
    struct Announce: Message { static let messageType = "test.AnnounceLedger"; var ledgerId: String }
    struct Notify: Message { static let messageType = "test.NotifyLedger"; var ledgerId: String }
    struct Opened: Message { static let messageType = "test.LedgerOpened"; var ledgerId: String }
    struct Audit: Message { static let messageType = "test.AuditLedger" }
    struct Refused: Error, CustomStringConvertible { var description: String { "the ledger refused to open" } }

    static func define(_ saga: inout SagaDefinition<LedgerSaga>) {
        saga.startedBy(Open.self, correlatedBy: \.ledgerId) { open, context in
            try context.send(Opened(ledgerId: open.ledgerId), to: outQueue)
            try context.requestTimeout(after: .seconds(3600), Audit())
            if open.fail { throw Refused() }
            return LedgerSaga(ledgerId: open.ledgerId)
        }
        saga.startedBy(Announce.self, correlatedBy: \.ledgerId) { announce, context in
            try context.publish(Opened(ledgerId: announce.ledgerId), to: eventsExchange, routingKey: "opened")
            return LedgerSaga(ledgerId: announce.ledgerId)
        }
        saga.startedBy(Notify.self, correlatedBy: \.ledgerId) { notify, context in
            try context.send(Opened(ledgerId: notify.ledgerId), to: noticesQueue)
            return LedgerSaga(ledgerId: notify.ledgerId)
        }
        saga.handlesTimeout(Audit.self) { _, _, _ in }
    }
}

/// A stateless handler that always throws, counting its calls.
struct Explode: Message {
    static let messageType = "test.Explode"
    var note: String

    struct Failure: Error, CustomStringConvertible { var description: String { "exploded on purpose" } }

    static func registry(calls: Tally) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in
            calls.increment()
            throw Failure()
        }
        return registry
    }
}
