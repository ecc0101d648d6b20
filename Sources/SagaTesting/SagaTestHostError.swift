public import Foundation

/// Errors of the test host itself (saga and message errors are `SagaError`s).
public enum SagaTestHostError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `advanceTime` made more deliveries than `maxDeliveriesPerAdvance`: a saga keeps asking for
    /// timeouts that are already due?
    case tooManyDeliveries(limit: Int)
    /// The message has an empty id. The endpoint sends such a message to the error queue before any
    /// handler runs (it cannot be deduplicated); the host refuses it rather than treat the next message
    /// with an empty id as a duplicate.
    case missingMessageId(type: String)
    /// A handler emitted a message AMQP cannot carry: a queue, exchange, routing key, type, id,
    /// correlation id, reply-to or header name over 255 bytes, or headers that do not fit in one frame
    /// (`frameMax`). The endpoint refuses it before it is stored and moves the incoming message to the
    /// error queue (`x-error-type: InvalidOutgoingMessage`).
    case invalidOutgoingMessage(messageId: String, type: String, reason: String)
    /// `advanceTime(by:)` was given a negative duration: the clock only goes forward.
    case negativeDuration(Duration)
    /// `advanceTime(to:)` was given a date before the clock's `now`: the clock only goes forward, and a date
    /// it has passed fires nothing.
    case dateInThePast(Date, now: Date)
    /// `advanceTime(to:)` was given a date of NaN seconds. It carries no date: Foundation traps when it
    /// prints one, as Swift Testing does with a thrown error, which ended the whole test process.
    case dateNotANumber(now: Date)
    /// The message's body is over `maxBodyBytes`. The endpoint moves such a delivery to the error queue
    /// before any handler runs (`x-error-type: BodyTooLarge`).
    case bodyTooLarge(messageId: String, type: String, bytes: Int, limit: Int)
    /// `deliverReply(_:to:)` was given a message with no `reply_to` (an event, a reply, or a command sent
    /// with an empty one): the receiver's `context.reply` throws `SagaError.noReplyAddress`, no reply comes.
    case commandWithoutReplyTo(messageId: String, type: String)

    public var description: String {
        switch self {
        case .tooManyDeliveries(let limit):
            "advanceTime delivered more than \(limit) messages; does a saga keep requesting due timeouts?"
        case .missingMessageId(let type):
            "a '\(type)' message without message id cannot be deduplicated; the endpoint sends it to the error queue"
        case .invalidOutgoingMessage(let messageId, let type, let reason):
            "outgoing message \(messageId) (\(type)) cannot be sent: \(reason); the endpoint sends the incoming "
                + "message to the error queue"
        case .negativeDuration(let duration):
            "advanceTime(by: \(duration)): time cannot go backwards"
        case .dateNotANumber(let now):
            "advanceTime(to:) a date whose seconds are not a number (NaN); the clock is at \(now)"
        case .dateInThePast(let date, let now):
            "advanceTime(to: \(date)): the clock is at \(now) already; time cannot go backwards"
        case .bodyTooLarge(let messageId, let type, let bytes, let limit):
            "the body of message \(messageId) (\(type)) is \(bytes) bytes, over the endpoint's limit of \(limit) "
                + "(maxBodyBytes); the endpoint sends it to the error queue unread"
        case .commandWithoutReplyTo(let messageId, let type):
            "message \(messageId) (\(type)) has no reply_to: its receiver cannot reply to it"
        }
    }
}
