import Foundation
public import Sagas
public import Testing

/// A list of emitted messages with lookups and Swift Testing expectations. `DeliveryResult`,
/// `TimeAdvanceResult` and `SagaTestHost` (everything emitted so far) conform.
///
/// The `expect…` helpers record a Swift Testing issue at the caller's source location when nothing
/// matches, listing what was emitted instead (kind, type, destination, ids and JSON body). The
/// throwing ones (`expectSent`, `expectPublished`, `expectReplied`) also stop the test, like `#require`.
public protocol EmittedMessages {
    var emitted: [OutgoingMessage] { get }
    /// What the deliveries behind these messages did (disposition and saga outcomes), added to a failed
    /// `expect…`'s issue; nil when there is nothing to add (the host's whole history).
    var outcomeListing: String? { get }
}

extension EmittedMessages {
    public var outcomeListing: String? { nil }

    /// Commands sent to a queue.
    public var sent: [OutgoingMessage] { emitted.filter { $0.kind == .send } }
    /// Events published to an exchange.
    public var published: [OutgoingMessage] { emitted.filter { $0.kind == .publish } }
    /// Replies (`reply`, `replyToOriginator`).
    public var replied: [OutgoingMessage] { emitted.filter { $0.kind == .reply } }

    /// The emitted messages (any kind) of type `M`, as envelopes.
    public func messages<M: Message>(ofType type: M.Type) -> [OutgoingMessage] {
        emitted.filter { $0.type == M.messageType }
    }

    /// The emitted messages (any kind) of type `M`, decoded.
    public func decoded<M: Message>(_ type: M.Type) throws -> [M] {
        try messages(ofType: type).map { try $0.decode(type) }
    }

    /// The first `M` sent (to `queue`, if given), decoded; otherwise records an issue listing what was
    /// emitted and throws.
    @discardableResult
    public func expectSent<M: Message>(
        _ type: M.Type, to queue: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> M {
        let what = "\(M.messageType) sent" + (queue.map { " to queue '\($0)'" } ?? "")
        return try require(type, what, sourceLocation) { $0.kind == .send && (queue == nil || $0.queue == queue) }
    }

    /// The first `M` published (to `exchange` with `routingKey`, if given), decoded; otherwise records an
    /// issue listing what was emitted and throws.
    @discardableResult
    public func expectPublished<M: Message>(
        _ type: M.Type, to exchange: String? = nil, routingKey: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> M {
        var what = "\(M.messageType) published"
        if let exchange { what += " to exchange '\(exchange)'" }
        if let routingKey { what += " with routing key '\(routingKey)'" }
        return try require(type, what, sourceLocation) {
            $0.kind == .publish && (exchange == nil || $0.exchange == exchange)
                && (routingKey == nil || $0.routingKey == routingKey)
        }
    }

    /// The first `M` replied (to queue `replyTo`, if given), decoded; otherwise records an issue listing
    /// what was emitted and throws.
    @discardableResult
    public func expectReplied<M: Message>(
        _ type: M.Type, to replyTo: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> M {
        let what = "\(M.messageType) replied" + (replyTo.map { " to '\($0)'" } ?? "")
        return try require(type, what, sourceLocation) { $0.kind == .reply && (replyTo == nil || $0.queue == replyTo) }
    }

    /// Records an issue listing the emitted messages unless there are none.
    public func expectNothingEmitted(sourceLocation: SourceLocation = #_sourceLocation) {
        guard !emitted.isEmpty else { return }
        Issue.record(Comment(rawValue: "expected no messages, but got:\n" + emittedListing), sourceLocation: sourceLocation)
    }

    /// Records an issue listing the offending messages if any `M` was emitted.
    public func expectNone<M: Message>(_ type: M.Type, sourceLocation: SourceLocation = #_sourceLocation) {
        let found = messages(ofType: type)
        guard !found.isEmpty else { return }
        Issue.record(Comment(rawValue: "expected no \(M.messageType), but got:\n" + Self.listing(found)),
                     sourceLocation: sourceLocation)
    }

    /// One line per emitted message: kind, type, destination, ids and JSON body.
    public var emittedListing: String {
        emitted.isEmpty ? "  (nothing was emitted)" : Self.listing(emitted)
    }

    static func listing(_ messages: [OutgoingMessage]) -> String {
        messages.map { "  - " + $0.summary }.joined(separator: "\n")
    }

    private func require<M: Message>(
        _ type: M.Type, _ what: String, _ sourceLocation: SourceLocation, _ matches: (OutgoingMessage) -> Bool
    ) throws -> M {
        let match = emitted.first { $0.type == M.messageType && matches($0) }
        // With nothing emitted the listing alone read as if a handler had run and sent nothing, when the
        // delivery was a duplicate or found no saga instance: say what it did.
        let message = "expected \(what), but the messages emitted were:\n" + emittedListing
            + (outcomeListing.map { "\nwhat was delivered:\n" + $0 } ?? "")
        let found = try #require(match, Comment(rawValue: message), sourceLocation: sourceLocation)
        return try found.decode(type)
    }
}

extension OutgoingMessage {
    /// The body as text (JSON).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// One line: kind, type, destination, ids and JSON body.
    public var summary: String {
        var properties = ["id \(messageId)"]
        if let correlationId { properties.append("correlation_id \(correlationId)") }
        if let replyTo { properties.append("reply_to \(replyTo)") }
        if !headers.isEmpty {
            properties.append("headers " + headers.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                .joined(separator: ","))
        }
        let destination = exchange.isEmpty
            ? "queue '\(routingKey)'"
            : "exchange '\(exchange)' routing key '\(routingKey)'"
        return "\(kind.rawValue) \(type) to \(destination) [\(properties.joined(separator: ", "))] \(bodyText)"
    }
}
