public import Foundation
public import Sagas
public import Testing

/// The timeouts handlers asked for, with a Swift Testing expectation. `DeliveryResult`,
/// `TimeAdvanceResult` and `SagaTestHost` (every committed delivery so far) conform.
///
/// Only committed deliveries request timeouts: a duplicate, a deferred or a dead-lettered delivery, or one
/// that threw, asked for none.
public protocol RequestedTimeouts: EmittedMessages {
    /// Each timeout requested, in request order, with the virtual time of the delivery that asked for it
    /// (the handler's `context.now`): its delay is `dueAt` less that time.
    var timeoutRequests: [(timeout: TimeoutRequest, requestedAt: Date)] { get }
}

extension DeliveryResult: RequestedTimeouts {
    public var timeoutRequests: [(timeout: TimeoutRequest, requestedAt: Date)] {
        timeoutsRequested.map { ($0, deliveredAt) }
    }
}

extension TimeAdvanceResult: RequestedTimeouts {
    public var timeoutRequests: [(timeout: TimeoutRequest, requestedAt: Date)] {
        deliveries.flatMap(\.timeoutRequests)
    }
}

extension SagaTestHost: RequestedTimeouts {
    public var timeoutRequests: [(timeout: TimeoutRequest, requestedAt: Date)] {
        history.flatMap(\.timeoutRequests)
    }
}

extension RequestedTimeouts {
    /// The first timeout of type `T` requested (`after` `delay`, if given), decoded; otherwise records an
    /// issue at the caller's line listing the timeouts requested (and, on a `DeliveryResult` or a
    /// `TimeAdvanceResult`, what the delivery did) and throws.
    ///
    /// `delay` matches exactly as `context.requestTimeout(after:)` was given it: the due time is computed
    /// from the request time and the delay as the handler's context computes it.
    @discardableResult
    public func expectTimeoutRequested<T: Message>(
        _ type: T.Type, after delay: Duration? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> T {
        let match = timeoutRequests.first { request in
            request.timeout.type == T.messageType
                && (delay.map { request.timeout.dueAt == request.requestedAt.addingTimeInterval($0.timeInterval) } ?? true)
        }
        let what = "timeout \(T.messageType) requested" + (delay.map { " after \($0)" } ?? "")
        let message = "expected \(what), but the timeouts requested were:\n" + timeoutListing
            + (outcomeListing.map { "\nwhat was delivered:\n" + $0 } ?? "")
        let found = try #require(match, Comment(rawValue: message), sourceLocation: sourceLocation)
        return try MessageCoding.decode(type, from: found.timeout.body, messageType: found.timeout.type)
    }

    /// One line per requested timeout: type, delay, due time, saga instance, id and JSON body.
    public var timeoutListing: String {
        guard !timeoutRequests.isEmpty else { return "  (no timeout was requested)" }
        return timeoutRequests.map { timeout, requestedAt in
            "  - timeout \(timeout.type) after \(Self.delayText(timeout.dueAt.timeIntervalSince(requestedAt))) "
                + "(due \(timeout.dueAt)) for \(timeout.saga) [id \(timeout.timeoutId)] "
                + String(decoding: timeout.body, as: UTF8.self)
        }.joined(separator: "\n")
    }

    /// The delay as `Duration` prints it, to the microsecond. A delay of `.seconds(Int64.max)` ("never")
    /// does not fit in `Int64` microseconds, where converting it trapped: that one is printed in seconds.
    private static func delayText(_ seconds: TimeInterval) -> String {
        let micros = (seconds * 1e6).rounded()
        guard abs(micros) < 9.2e18 else { return "\(seconds) seconds" }
        return "\(Duration.microseconds(Int64(micros)))"
    }
}
