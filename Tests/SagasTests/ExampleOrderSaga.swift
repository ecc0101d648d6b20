import Foundation
import Sagas

// A small saga exercising every feature of the programming model, for the tests of `SagaTesting`.

struct OrderPlaced: Message {
    static let messageType = "OrderPlaced"
    var orderId: String
    var amount: Int
}

struct PaymentReceived: Message {
    static let messageType = "PaymentReceived"
    var orderId: String
}

/// Correlated by the AMQP correlation_id; not-found policy: error queue.
struct ShipmentConfirmed: Message {
    static let messageType = "ShipmentConfirmed"
    var trackingNumber: String
}

/// Not-found policy: retry later (it may overtake the OrderPlaced).
struct OrderCancelled: Message {
    static let messageType = "OrderCancelled"
    var orderId: String
}

/// With `outOf` 0 it makes the state non-encodable (NaN), to check that the JSON round trip fails.
struct SetScore: Message {
    static let messageType = "SetScore"
    var orderId: String
    var points: Double
    var outOf: Int
}

/// Replies to the originator unconditionally.
struct OrderStatusRequested: Message {
    static let messageType = "OrderStatusRequested"
    var orderId: String
}

struct ChargeCard: Message {
    static let messageType = "ChargeCard"
    var orderId: String
    var amount: Int
}

struct OrderShipped: Message, Equatable {
    static let messageType = "OrderShipped"
    var orderId: String
    var trackingNumber: String
}

struct OrderAccepted: Message {
    static let messageType = "OrderAccepted"
    var orderId: String
}

struct PaymentReminder: Message {
    static let messageType = "OrderSaga.PaymentReminder"
    var attempt: Int
}

struct PaymentDeadline: Message {
    static let messageType = "OrderSaga.PaymentDeadline"
}

struct OrderSaga: Saga {
    static let sagaType = "OrderSaga"
    static let ordersEvents = "orders.events"

    var orderId: String
    var amount: Int
    var paid = false
    var reminders = 0
    var deadlinePassed = false
    var score = 0.0

    static func define(_ saga: inout SagaDefinition<OrderSaga>) {
        saga.startedBy(OrderPlaced.self, correlatedBy: \.orderId) { placed, context in
            let order = OrderSaga(orderId: placed.orderId, amount: placed.amount)
            guard placed.amount > 0 else {
                try context.markComplete()
                return order
            }
            try context.send(ChargeCard(orderId: placed.orderId, amount: placed.amount), to: "payments")
            // Requested in this order, due in the opposite order.
            try context.requestTimeout(after: .seconds(30), PaymentReminder(attempt: 1))
            try context.requestTimeout(after: .seconds(20), PaymentDeadline())
            return order
        }
        saga.handles(PaymentReceived.self, correlatedBy: \.orderId) { order, _, context in
            order.paid = true
            if context.originator?.replyTo != nil {
                try context.replyToOriginator(OrderAccepted(orderId: order.orderId))
            }
        }
        saga.handles(OrderStatusRequested.self, correlatedBy: \.orderId) { order, _, context in
            try context.replyToOriginator(OrderAccepted(orderId: order.orderId))
        }
        saga.handles(ShipmentConfirmed.self, correlatedBy: .correlationId, whenNotFound: .errorQueue) { order, shipped, context in
            try context.publish(OrderShipped(orderId: order.orderId, trackingNumber: shipped.trackingNumber),
                                to: ordersEvents)
            // Asked for in the completing step: must never be delivered.
            try context.requestTimeout(after: .seconds(1), PaymentDeadline())
            try context.markComplete()
        }
        saga.handles(OrderCancelled.self, correlatedBy: \.orderId,
                     whenNotFound: .retryLater(attempts: 2, delay: .seconds(5))) { _, _, context in
            try context.markComplete()
        }
        saga.handles(SetScore.self, correlatedBy: \.orderId) { order, message, context in
            order.score = message.points / Double(message.outOf)
            try context.send(ChargeCard(orderId: order.orderId, amount: 1), to: "payments")
        }
        saga.handlesTimeout(PaymentReminder.self) { order, reminder, context in
            guard !order.paid else { return }
            order.reminders = reminder.attempt
            try context.send(ChargeCard(orderId: order.orderId, amount: order.amount), to: "payments")
            if reminder.attempt < 3 {
                try context.requestTimeout(after: .seconds(30), PaymentReminder(attempt: reminder.attempt + 1))
            }
        }
        saga.handlesTimeout(PaymentDeadline.self) { order, _, _ in
            order.deadlinePassed = true
        }
    }
}

// A stateless handler.
struct Ping: Message {
    static let messageType = "Ping"
    var text: String
}

struct Pong: Message {
    static let messageType = "Pong"
    var text: String
}

// Optional correlation: items belong to a group only sometimes.
struct GroupOpened: Message {
    static let messageType = "GroupOpened"
    var groupId: String
}

struct ItemProcessed: Message {
    static let messageType = "ItemProcessed"
    var itemId: String
    var groupId: String?
}

struct GroupSaga: Saga {
    static let sagaType = "GroupSaga"
    var groupId: String
    var items: [String] = []

    static func define(_ saga: inout SagaDefinition<GroupSaga>) {
        saga.startedBy(GroupOpened.self, correlatedBy: \.groupId) { opened, _ in
            GroupSaga(groupId: opened.groupId)
        }
        saga.handles(ItemProcessed.self, correlatedBy: .optionalProperty(\.groupId)) { group, item, _ in
            group.items.append(item.itemId)
        }
    }
}

func exampleRegistry() -> HandlerRegistry {
    var registry = HandlerRegistry()
    registry.register(OrderSaga.self)
    registry.register(GroupSaga.self)
    registry.handle(Ping.self) { ping, context in
        await Task.yield()
        try context.reply(Pong(text: ping.text.uppercased()))
    }
    return registry
}
