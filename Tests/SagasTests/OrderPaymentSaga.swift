import Foundation
import Sagas

// A saga at its second version, for the tests of seeding: version 2 added `couponCode`, an optional, so
// the states version 1 stored still decode.

struct PaymentRequested: Message {
    static let messageType = "PaymentRequested"
    var orderId: String
    var amount: Int
}

struct PaymentCaptured: Message {
    static let messageType = "PaymentCaptured"
    var orderId: String
    var amount: Int
}

struct CapturePayment: Message, Equatable {
    static let messageType = "CapturePayment"
    var orderId: String
    var amount: Int
}

/// The reply to the originator once the whole amount is captured.
struct PaymentSettled: Message, Equatable {
    static let messageType = "PaymentSettled"
    var orderId: String
    var captured: Int
    var couponCode: String?
}

struct PaymentOverdue: Message {
    static let messageType = "OrderPayment.Overdue"
    var attempt: Int
}

struct OrderPayment: Saga, Equatable {
    static let sagaType = "OrderPayment"
    static let paymentsQueue = "payments"

    var orderId: String
    var amount: Int
    var captured = 0
    var reminders = 0
    /// Added in version 2.
    var couponCode: String?

    static func define(_ saga: inout SagaDefinition<OrderPayment>) {
        saga.startedBy(PaymentRequested.self, correlatedBy: \.orderId) { request, context in
            try context.send(CapturePayment(orderId: request.orderId, amount: request.amount), to: paymentsQueue)
            try context.requestTimeout(after: .seconds(600), PaymentOverdue(attempt: 1))
            return OrderPayment(orderId: request.orderId, amount: request.amount)
        }
        saga.handles(PaymentCaptured.self, correlatedBy: \.orderId) { payment, captured, context in
            payment.captured += captured.amount
            guard payment.captured >= payment.amount else { return }
            try context.replyToOriginator(PaymentSettled(orderId: payment.orderId, captured: payment.captured,
                                                         couponCode: payment.couponCode))
            try context.markComplete()
        }
        saga.handlesTimeout(PaymentOverdue.self) { payment, overdue, context in
            payment.reminders = overdue.attempt
            try context.send(CapturePayment(orderId: payment.orderId, amount: payment.amount - payment.captured),
                             to: paymentsQueue)
        }
    }
}
