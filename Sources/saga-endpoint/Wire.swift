import AMQPTransport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas

/// Messages as the reference app puts them on the wire, through `MessageSession` (JSON bodies, `type` =
/// message type, a unique persistent `message_id`, commands mandatory, published with confirms).
enum Wire {
    static let appId = "saga-endpoint-cli"

    /// A command for `queue` through the default exchange.
    static func command<M: Message>(_ message: M, to queue: String, messageId: String? = nil,
                                    correlationId: String? = nil, replyTo: String? = nil) throws -> PublishRequest {
        try MessageSession.command(message, to: queue, messageId: messageId, correlationId: correlationId,
                                   replyTo: replyTo, appId: appId)
    }

    /// Publishes with confirms; explains an unroutable command (its queue does not exist).
    static func publish(_ requests: [PublishRequest], on connection: AMQPConnection) async throws {
        do {
            try await MessageSession(connection: connection, appId: appId).send(requests)
        } catch where error.code == .unroutable {
            throw CLIError("\(error.messageType) to \(error.destination): \(error.reason); declare the topology first: "
                + "saga-endpoint topology declare")
        } catch {
            throw CLIError("publishing \(error.messageType) \(error.messageId) to \(error.destination) failed: \(error.reason)")
        }
    }

    /// Publishes as `publish` does and waits for the confirms until `deadline`; false when they had not
    /// come by then. A resource alarm holds confirms back for as long as it lasts: unbounded, a command hung.
    static func publish(_ requests: [PublishRequest], on connection: AMQPConnection,
                        until deadline: ContinuousClock.Instant) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await publish(requests, on: connection)
                return true
            }
            group.addTask {
                try await Task.sleep(until: deadline)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// An event of the reference app, decoded from a delivery.
    enum Event: Sendable {
        case transferCompleted(TransferCompleted)
        case transferFailed(TransferFailed)
        case transferStalled(TransferStalled)
        case payoutCompleted(PayoutCompleted)

        var transferId: String? {
            switch self {
            case .transferCompleted(let event): event.transferId
            case .transferFailed(let event): event.transferId
            case .transferStalled(let event): event.transferId
            case .payoutCompleted: nil
            }
        }
    }

    /// The type of a delivery: its `type` property, else its routing key.
    static func type(of delivery: AMQPDelivery) -> String {
        delivery.properties.type ?? delivery.routingKey
    }

    /// Decodes the known event types; nil for anything else (or a body that does not decode).
    static func event(_ delivery: AMQPDelivery) -> Event? {
        let type = type(of: delivery), body = delivery.message.body
        switch type {
        case TransferCompleted.messageType:
            return (try? MessageCoding.decode(TransferCompleted.self, from: body, messageType: type)).map(Event.transferCompleted)
        case TransferFailed.messageType:
            return (try? MessageCoding.decode(TransferFailed.self, from: body, messageType: type)).map(Event.transferFailed)
        case TransferStalled.messageType:
            return (try? MessageCoding.decode(TransferStalled.self, from: body, messageType: type)).map(Event.transferStalled)
        case PayoutCompleted.messageType:
            return (try? MessageCoding.decode(PayoutCompleted.self, from: body, messageType: type)).map(Event.payoutCompleted)
        default:
            return nil
        }
    }

    /// The delivery as one JSON line: `{"type": …, "messageId": …, "event": {body}}`.
    static func jsonLine(_ delivery: AMQPDelivery) -> String {
        let body: Any = (try? JSONSerialization.jsonObject(with: delivery.message.body, options: [.fragmentsAllowed]))
            ?? String(decoding: delivery.message.body, as: UTF8.self)
        let object: [String: Any] = [
            "type": type(of: delivery), "messageId": delivery.properties.messageId ?? NSNull(), "event": body,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// A temporary exclusive, auto-delete queue bound to event exchanges, with a consumer on it.
struct EventSubscription: Sendable {
    let queue: String
    let consumer: AMQPConsumer
    let connection: AMQPConnection

    /// Declares the queue, binds it to every `exchange` with key `#`, and starts consuming.
    static func open(on connection: AMQPConnection, exchanges: [String], prefetch: UInt16 = 1000) async throws -> EventSubscription {
        let queue = "saga-endpoint.cli.\(UUID().uuidString.prefix(8).lowercased())"
        do {
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false, exclusive: true, autoDelete: true))
            for exchange in exchanges {
                try await connection.bind(BindingDeclaration(source: exchange, destination: queue, routingKey: "#"))
            }
            let consumer = try await connection.consume(queue: queue, prefetch: prefetch, exclusive: true)
            return EventSubscription(queue: queue, consumer: consumer, connection: connection)
        } catch let error as AMQPError where error.replyCode == 404 {
            throw CLIError("cannot subscribe to \(exchanges.joined(separator: ", ")): \(error.message); "
                + "declare the topology first: saga-endpoint topology declare")
        }
    }

    func ack(_ delivery: AMQPDelivery) async {
        // A stale tag after a reconnect only means the broker redelivers; nothing to do.
        try? await connection.ack(delivery.tag)
    }
}

/// Writes a line to standard output at once (unbuffered, so progress and results interleave correctly).
func printLine(_ text: String) {
    StandardStreams.write(text + "\n", to: FileHandle.standardOutput)
}
