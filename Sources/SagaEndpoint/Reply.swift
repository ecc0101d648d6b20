public import AMQPTransport
public import Foundation
public import Sagas

/// A reply to a `RequestClient` request: the message a handler sent with `context.reply` (or a saga with
/// `replyToOriginator`) to the request's `reply_to`, carrying its `correlation_id`.
///
/// A request can be answered with one of several types (a bank answers a debit with `AccountDebited` or
/// `DebitRejected`): look at `type`, or ask `is(_:)`, and `decode(_:)` the one it is.
public struct Reply: Sendable {
    /// The reply's message type (its `type` property; empty when it has none).
    public let type: String
    /// The reply's own message id.
    public let messageId: String
    /// The correlation id it carried: the request's.
    public let correlationId: String
    public let body: Data
    public let properties: BasicProperties
    /// The request it answers, for errors.
    let request: RequestClient.Request

    /// Whether the reply is an `R` (by its type).
    public func `is`<R: Message>(_ type: R.Type) -> Bool { self.type == R.messageType }

    /// The reply as an `R`. A reply of another type, or whose body does not decode as one, is
    /// `.unexpectedReply` (the error names the request; its reason names the reply's type).
    public func decode<R: Message>(_ type: R.Type) throws(MessageSessionError) -> R {
        guard self.is(R.self) else {
            throw unexpected("the reply is a '\(self.type)' (message id \(messageId)), not a '\(R.messageType)'")
        }
        do {
            return try MessageCoding.decode(R.self, from: body, messageType: R.messageType)
        } catch {
            throw unexpected("the reply '\(self.type)' (message id \(messageId)) did not decode: \(error)")
        }
    }

    private func unexpected(_ reason: String) -> MessageSessionError {
        request.error(.unexpectedReply, reason)
    }
}
