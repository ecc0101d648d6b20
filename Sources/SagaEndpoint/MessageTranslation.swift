import AMQPTransport
import Foundation
import SagaStore
import Sagas

/// Why a delivery cannot be processed at all; it goes to the error queue with this reason.
struct RejectionReason: Error, Sendable, CustomStringConvertible {
    var kind: String
    var detail: String
    var description: String { "\(kind): \(detail)" }
}

/// Turns AMQP deliveries into messages for the dispatcher, and outbox rows into AMQP publishes.
enum MessageTranslation {
    /// Header keys carried through SQLite for messages parked for a delayed retry.
    static let originalQueueHeader = "x-saga-original-queue"
    static let originalMessageIdHeader = "x-saga-original-message-id"
    static let originalCorrelationIdHeader = "x-saga-original-correlation-id"
    static let originalReplyToHeader = "x-saga-original-reply-to"
    static let retryAttemptHeader = "x-saga-retry-attempt"
    /// On a copy parked by `retryLater` only: when it first found no saga (seconds since 1970). Its waits are
    /// counted on the row (`retryAttemptHeader`), apart from the handler failures counted in the store.
    static let notFoundSinceHeader = "x-saga-not-found-since"
    /// Set by a replay from an error queue: how often the message was replayed, and its first failure.
    static let replaysHeader = "x-replays"
    static let replayedFirstFailureHeader = "x-replayed-first-failure"
    /// On the error-queue copy of a saga timeout (and a parked retry of it): the saga instance it belongs
    /// to. A timeout type from the broker has no handler, so without them a replayed timeout came straight
    /// back as NoHandler and its saga never got it; with them it reaches that instance, as its timeout.
    static let timeoutSagaTypeHeader = "x-saga-timeout-saga-type"
    static let timeoutCorrelationIdHeader = "x-saga-timeout-correlation-id"
    /// The id of the instance that asked for the timeout (`SagaRecord.sagaId`): a replay after that instance
    /// completed must not reach a new one under the same correlation id (the store withdraws its own
    /// timeouts when their saga completes). Left in the headers, where the endpoint checks it.
    static let timeoutSagaIdHeader = "x-saga-timeout-saga-id"
    /// On an error-queue copy: the original's `user_id` and `expiration`, which the copy cannot carry as
    /// properties (see `errorQueueRequest`). Informational; a replay does not give them back.
    static let originalUserIdHeader = "x-original-user-id"
    static let originalExpirationHeader = "x-original-expiration"
    /// On the error-queue copy of an event (sent to a named exchange): where a replay publishes it, as
    /// `x-original-queue` says for a command or reply.
    static let originalExchangeHeader = "x-original-exchange"
    static let originalRoutingKeyHeader = "x-original-routing-key"

    /// The properties that decide what becomes of a message (`BasicProperties.invalidUTF8` names).
    static let significantProperties: Set<String> = [
        "message-id", "correlation-id", "reply-to", "type", "content-type", "a header key"]

    /// `application/json`, with parameters or not (`; charset=utf-8`), in any case. Not a type that only
    /// begins so (`application/jsonp`, which a prefix check took for JSON).
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return mediaType.trimmingCharacters(in: .whitespaces).lowercased() == MessageCoding.contentType
    }

    /// Content encodings that compress the body, which the endpoint does not undo: refused with that reason
    /// rather than as a body that is not JSON. (Others are let through: many clients set `utf-8` there.)
    static let compressions: Set<String> = ["gzip", "x-gzip", "deflate", "br", "compress", "x-compress", "zstd"]

    static func incoming(_ delivery: AMQPDelivery, maxBodyBytes: Int, registry: HandlerRegistry) throws(RejectionReason) -> IncomingMessage {
        let p = delivery.properties
        // Decoded with U+FFFD for their invalid bytes, they are not what was sent: two message ids that differ
        // only there became one, and the second message was dropped as a duplicate; a reply_to or correlation
        // id would name another queue or saga. (Properties the endpoint does not act on, such as app-id, pass.)
        let misread = p.invalidUTF8.filter(significantProperties.contains)
        if !misread.isEmpty {
            throw RejectionReason(kind: "MalformedProperties", detail: "\(misread.joined(separator: ", ")) "
                + "not valid UTF-8 (AMQP short strings are text): the copy shows each invalid byte as U+FFFD")
        }
        guard let messageId = p.messageId, !messageId.isEmpty else {
            throw RejectionReason(kind: "MissingMessageId", detail: "message has no message_id; it cannot be deduplicated")
        }
        guard let type = p.type, !type.isEmpty else {
            throw RejectionReason(kind: "MissingType", detail: "message \(messageId) has no type property")
        }
        if let contentType = p.contentType, !contentType.isEmpty, !isJSON(contentType) {
            throw RejectionReason(kind: "UnsupportedContentType", detail: "content_type '\(contentType)' is not \(MessageCoding.contentType)")
        }
        if let encoding = p.contentEncoding, compressions.contains(encoding.lowercased()) {
            throw RejectionReason(kind: "UnsupportedContentEncoding",
                                  detail: "content_encoding '\(encoding)': compressed bodies are not supported, send plain JSON")
        }
        guard delivery.message.body.count <= maxBodyBytes else {
            throw RejectionReason(kind: "BodyTooLarge", detail: "body of \(delivery.message.body.count) bytes exceeds the limit of \(maxBodyBytes)")
        }
        var headers: [String: String] = [:]
        for (key, value) in p.headers ?? [:] {
            if let text = headerText(value) { headers[key] = text }
        }
        // The headers name a saga instance only for one of that saga's timeout types (a replayed timeout).
        // On any other message they are ignored, so they cannot steer a message past its correlation and
        // stateless handlers; a timeout type whose saga they do not name has no handler from the broker.
        // (Accepted for a saga that does not handle the type, it was acknowledged with no effect.)
        var timeoutTarget = takeTimeoutTarget(from: &headers)
        if let target = timeoutTarget, !registry.handlesTimeout(type: type, bySaga: target.sagaType) {
            timeoutTarget = nil
        }
        guard timeoutTarget != nil || registry.handlesFromBroker(type: type) else {
            throw RejectionReason(kind: "NoHandler", detail: "no saga or handler handles message type '\(type)'"
                + (p.headers?[timeoutSagaTypeHeader] == nil ? "" : " (as a timeout of the saga its "
                    + "\(timeoutSagaTypeHeader) names, with a correlation id in \(timeoutCorrelationIdHeader))"))
        }
        return IncomingMessage(
            messageId: messageId, type: type, body: delivery.message.body, correlationId: p.correlationId,
            replyTo: p.replyTo, headers: headers, queue: delivery.queue, timeoutTarget: timeoutTarget)
    }

    /// The saga instance a replayed timeout belongs to (`timeoutSagaTypeHeader`), taken out of `headers`.
    static func takeTimeoutTarget(from headers: inout [String: String]) -> SagaInstanceKey? {
        let sagaType = headers.removeValue(forKey: timeoutSagaTypeHeader)
        let correlationId = headers.removeValue(forKey: timeoutCorrelationIdHeader)
        // A saga's correlation id is never empty (`SagaError.missingCorrelationId`): no instance is named.
        guard let sagaType, !sagaType.isEmpty, let correlationId, !correlationId.isEmpty else { return nil }
        return SagaInstanceKey(sagaType: sagaType, correlationId: correlationId)
    }

    /// `headers` with the saga instance of `target` (see `timeoutSagaTypeHeader`).
    static func withTimeoutTarget(_ target: SagaInstanceKey?, _ headers: [String: String]) -> [String: String] {
        guard let target else { return headers }
        var headers = headers
        headers[timeoutSagaTypeHeader] = target.sagaType
        headers[timeoutCorrelationIdHeader] = target.correlationId
        return headers
    }

    /// A header value as handlers see it in `IncomingMessage.headers`, which holds text (as `SagaTestHost`
    /// takes it): strings as they are, integers in decimal, booleans as `true` or `false`. Producers of
    /// other languages send numbers as AMQP integers; dropping them made a saga correlated by such a
    /// header fail on the endpoint while its tests passed. Other kinds (floats, decimals, timestamps,
    /// tables, arrays) have no one obvious text and are left out.
    static func headerText(_ value: FieldValue) -> String? {
        switch value {
        case .bool(let flag): flag ? "true" : "false"
        // Past `Int.max`, which `intValue` leaves out.
        case .uint64(let v): String(v)
        // A point in time, which `intValue` reads as seconds.
        case .timestamp: nil
        default: value.stringValue ?? value.intValue.map(String.init)
        }
    }

    /// A saga timeout or a parked delayed retry, as the message it becomes when due.
    static func incoming(_ row: TimeoutRecord) -> IncomingMessage {
        if row.sagaType.isEmpty {
            var headers = row.headers
            let messageId = headers.removeValue(forKey: originalMessageIdHeader) ?? row.timeoutId
            let queue = headers.removeValue(forKey: originalQueueHeader) ?? ""
            let correlationId = headers.removeValue(forKey: originalCorrelationIdHeader)
            let replyTo = headers.removeValue(forKey: originalReplyToHeader)
            headers.removeValue(forKey: retryAttemptHeader)
            headers.removeValue(forKey: notFoundSinceHeader)
            // A replayed saga timeout waiting for its delayed retry.
            let timeoutTarget = takeTimeoutTarget(from: &headers)
            return IncomingMessage(messageId: messageId, type: row.messageType, body: row.body,
                                   correlationId: correlationId, replyTo: replyTo, headers: headers, queue: queue,
                                   timeoutTarget: timeoutTarget)
        }
        return TimeoutRequest(
            timeoutId: row.timeoutId, saga: SagaInstanceKey(sagaType: row.sagaType, correlationId: row.correlationId),
            dueAt: row.dueAt, type: row.messageType, body: row.body, headers: row.headers
        ).asIncomingMessage()
    }

    /// Why nothing here handles a due row's message any more, or nil: a timeout of a saga type that is
    /// no longer registered (or renamed, or that no longer has a route for the timeout's type), a parked
    /// retry of a type whose handler was removed. Such a row goes to the error queue (`NoHandler`) as a
    /// delivery of a type nobody handles does, to be replayed once the handler is back; dispatched, it
    /// ran no handler and was recorded as processed, lost without a trace.
    static func unhandledDueRow(_ incoming: IncomingMessage, registry: HandlerRegistry) -> RejectionReason? {
        if let target = incoming.timeoutTarget {
            guard !registry.sagaHandles(type: incoming.type, sagaType: target.sagaType) else { return nil }
            return RejectionReason(kind: "NoHandler", detail: "no saga '\(target.sagaType)' that handles "
                + "'\(incoming.type)' is registered")
        }
        guard !registry.handlesFromBroker(type: incoming.type) else { return nil }
        return RejectionReason(kind: "NoHandler", detail: "no saga or handler handles message type '\(incoming.type)'")
    }

    /// A row that parks `incoming` until `dueAt` (a delayed retry, or a message early for its saga). `copy`
    /// tells apart the rows of copies of one message parked at the same attempt (a `retryLater` message
    /// counts each copy's attempts): the store keeps one row per id.
    static func deferral(of incoming: IncomingMessage, attempt: Int, dueAt: Date, now: Date,
                         copy: String? = nil, notFoundSince: Date? = nil) -> TimeoutRecord {
        var headers = withTimeoutTarget(incoming.timeoutTarget, incoming.headers)
        headers[originalMessageIdHeader] = incoming.messageId
        headers[originalQueueHeader] = incoming.queue
        headers[originalCorrelationIdHeader] = incoming.correlationId
        headers[originalReplyToHeader] = incoming.replyTo
        headers[retryAttemptHeader] = String(attempt)
        headers[notFoundSinceHeader] = notFoundSince.map { String($0.timeIntervalSince1970) }
        return TimeoutRecord(
            timeoutId: "retry:\(incoming.messageId):\(attempt)" + (copy.map { ":" + $0 } ?? ""), sagaType: "",
            correlationId: incoming.messageId,
            dueAt: dueAt, messageType: incoming.type, body: incoming.body, headers: headers, createdAt: now)
    }

    /// A message rebuilt from what the store kept of it (for the error-queue copy of a due row).
    static func message(_ incoming: IncomingMessage) -> AMQPMessage {
        var headers: FieldTable = [:]
        for (key, value) in withTimeoutTarget(incoming.timeoutTarget, incoming.headers) { headers[key] = .string(value) }
        return AMQPMessage(body: incoming.body, properties: BasicProperties(
            contentType: MessageCoding.contentType, headers: headers.isEmpty ? nil : headers,
            deliveryMode: .persistent, correlationId: incoming.correlationId, replyTo: incoming.replyTo,
            messageId: incoming.messageId, type: incoming.type))
    }

    static func publishRequest(_ row: OutboxRecord) -> PublishRequest {
        var headers: FieldTable = [:]
        for (key, value) in row.headers { headers[key] = .string(value) }
        let properties = BasicProperties(
            contentType: MessageCoding.contentType, headers: headers.isEmpty ? nil : headers, deliveryMode: .persistent,
            correlationId: row.correlationId, replyTo: row.replyTo, messageId: row.messageId,
            timestamp: UInt64(max(0, row.createdAt.timeIntervalSince1970)), type: row.messageType)
        // Events (published to a named exchange) are never mandatory, also those stored before events
        // stopped being stored as mandatory: such a row, unroutable, would be re-sent for ever. Commands and
        // replies go through the default exchange.
        return PublishRequest(exchange: row.exchange, routingKey: row.routingKey,
                              mandatory: row.mandatory && row.exchange.isEmpty,
                              message: AMQPMessage(body: row.body, properties: properties))
    }

    /// The error-queue copy of a message: the original body and properties (same message id), plus
    /// headers that say why, from where, and how often it failed.
    ///
    /// The properties must fit in one frame (`frameMax`). A message whose own headers nearly fill it left
    /// no room for the error headers: its copy could never be published, and the message came round for
    /// ever. Then the reason is shortened and its second copy (`x-error-description`) left out; if that
    /// is still too much, the original headers are left out and `x-error-headers-dropped` says so.
    ///
    /// Two properties move to headers. `user_id`: the broker checks it against the publishing user and
    /// closes the channel when they differ, so the copy of a message a producer sent under a user of its
    /// own was refused, and the message came round for ever. `expiration`: a per-message TTL holds in
    /// every queue, so the copy would expire in the error queue and be lost.
    ///
    /// `exchange`: for a message that was sent to a named exchange (an event), `queue` is its routing key:
    /// the copy names both (`x-original-exchange`, `x-original-routing-key`) instead of `x-original-queue`.
    static func errorQueueRequest(
        original: AMQPMessage, queue: String, exchange: String = "", errorQueue: String, reason: String, errorType: String,
        attempts: Int, firstFailure: Date?, lastFailure: Date, frameMax: Int = AMQPConfiguration.defaultFrameMax
    ) -> PublishRequest {
        var message = original
        if message.properties.deliveryMode == nil { message.properties.deliveryMode = .persistent }
        // A property of at most 255 bytes on the wire can come out longer (U+FFFD is three bytes for one
        // invalid byte): cut to what AMQP carries, the copy was refused at every publish, for ever.
        message.properties.invalidUTF8 = []
        for path in [\BasicProperties.contentType, \.contentEncoding, \.correlationId, \.replyTo, \.messageId, \.type,
                     \.appId, \.clusterId] {
            if let value = message.properties[keyPath: path], value.utf8.count > 255 {
                message.properties[keyPath: path] = ProtocolLimits.truncated(value)
            }
        }
        let userId = message.properties.userId
        let expiration = message.properties.expiration
        message.properties.userId = nil
        message.properties.expiration = nil
        // Keys too, for the same reason (a key too long made the copy drop every header, naming frame_max).
        var originalHeaders: FieldTable = [:]
        for (key, value) in message.properties.headers ?? [:] { originalHeaders[ProtocolLimits.truncated(key)] = value }
        func copy(headers: FieldTable, shortened: Bool, note: String? = nil) -> PublishRequest {
            var headers = headers
            let formatter = ISO8601DateFormatter()
            headers["x-error-reason"] = .string(shortened ? String(reason.prefix(200)) : reason)
            headers["x-error-type"] = .string(errorType)
            if !shortened { headers["x-error-description"] = .string(String(reason.prefix(4000))) }
            // One origin only (a header the original came with must not send a replay elsewhere): a replay
            // goes to the exchange when the copy names one.
            headers.removeValue(forKey: originalExchangeHeader)
            headers.removeValue(forKey: originalRoutingKeyHeader)
            if exchange.isEmpty {
                headers["x-original-queue"] = .string(queue)
            } else {
                headers.removeValue(forKey: "x-original-queue")
                headers[originalExchangeHeader] = .string(exchange)
                headers[originalRoutingKeyHeader] = .string(queue)
            }
            headers["x-attempts"] = .int64(Int64(attempts))
            // A replayed message that fails again keeps the first failure of its first round.
            // Only a time: the header comes with the incoming message, so an outsider could otherwise write the
            // first-failure time an operator reads.
            let replayedFirst = headers.removeValue(forKey: replayedFirstFailureHeader)?.stringValue
                .flatMap { formatter.date(from: $0) != nil ? $0 : nil }
            headers["x-first-failure"] = .string(replayedFirst ?? formatter.string(from: firstFailure ?? lastFailure))
            headers["x-last-failure"] = .string(formatter.string(from: lastFailure))
            headers["x-host"] = .string(ProcessInfo.processInfo.hostName)
            if let note { headers["x-error-headers-dropped"] = .string(note) }
            if let userId { headers[originalUserIdHeader] = .string(userId) }
            if let expiration { headers[originalExpirationHeader] = .string(expiration) }
            var copy = message
            copy.properties.headers = headers
            return PublishRequest(exchange: "", routingKey: errorQueue, mandatory: true, message: copy)
        }
        /// Why AMQP cannot carry `request`, nil when it can.
        func problem(_ request: PublishRequest) -> String? {
            do {
                try request.checkLimits(frameMax: frameMax)
                return nil
            } catch {
                return (error as? AMQPError)?.message ?? "\(error)"
            }
        }
        let full = copy(headers: originalHeaders, shortened: false)
        if problem(full) == nil { return full }
        let short = copy(headers: originalHeaders, shortened: true)
        guard let why = problem(short) else { return short }
        // What the endpoint itself reads back on a replay stays: the replay count, and the saga instance a
        // timeout belongs to (without it the replayed timeout has no handler).
        var kept: FieldTable = [:]
        for key in [replaysHeader, replayedFirstFailureHeader, timeoutSagaTypeHeader, timeoutCorrelationIdHeader,
                    timeoutSagaIdHeader] {
            if let value = originalHeaders[key] { kept[key] = value }
        }
        // The cause as AMQP gave it: headers over one frame, or a key inside a table over 255 bytes (a
        // producer's key that was not UTF-8 grows when decoded), which the note blamed on frame_max.
        return copy(headers: kept, shortened: true, note: "its \(originalHeaders.count) headers did not fit "
            + "beside the error headers (\(why); frame_max \(frameMax))")
    }
}
