public import Sagas

/// Answering a command a saga sent, as the service that receives it would, without copying its
/// correlation id and reply queue by hand.
extension SagaTestHost {
    /// Delivers `reply` as the receiving service's handler answers `command` with `context.reply`: with
    /// the command's `correlation_id` (copied as it is, none when the command has none, as the endpoint
    /// does), from the command's `reply_to` queue, and with its W3C trace headers (`traceparent`,
    /// `tracestate`) as a receiver copies them; `headers` are added and win. Without `messageId` the host
    /// generates one (`msg-1`, `msg-2`, …). Otherwise a delivery as `deliver(_:messageId:…)`.
    ///
    /// The reply is delivered to this host whatever the queue is named: a host stands for one endpoint,
    /// which may consume more than one queue.
    ///
    /// Throws `SagaTestHostError.commandWithoutReplyTo` for a message with no (or an empty) `reply_to`,
    /// such as an event or a reply: the receiver's `context.reply` would throw
    /// `SagaError.noReplyAddress` and nothing would come back.
    @discardableResult
    public nonisolated(nonsending) func deliverReply<M: Message>(
        _ reply: M, to command: OutgoingMessage, messageId: String? = nil, headers: [String: String] = [:]
    ) async throws -> DeliveryResult {
        guard let replyTo = command.replyTo, !replyTo.isEmpty else {
            throw SagaTestHostError.commandWithoutReplyTo(messageId: command.messageId, type: command.type)
        }
        var replyHeaders = headers
        for key in HandlerContext.propagatedHeaders where replyHeaders[key] == nil {
            if let value = command.headers[key] { replyHeaders[key] = value }
        }
        return try await deliver(reply, messageId: messageId, correlationId: command.correlationId,
                                 headers: replyHeaders, queue: replyTo)
    }
}
