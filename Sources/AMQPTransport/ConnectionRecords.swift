import Foundation

/// A consumer as registered, so it can be re-registered after recovery.
struct ConsumerRecord {
    var queue: String
    var tag: String
    var prefetch: UInt16
    var exclusive: Bool
    var arguments: FieldTable
    var buffer: DeliveryBuffer
    /// On the consumer's current channel; moves to `cancelledChannels` when it is cancelled.
    var unsettled = UnsettledDeliveries()
}

/// What this connection declared, in order to declare it again after recovery.
struct RecordedTopology {
    var exchanges: [String: ExchangeDeclaration] = [:]
    var queues: [String: QueueDeclaration] = [:]
    var bindings: [BindingDeclaration] = []
    /// Deletes and unbinds of recorded topology that the connection loss cut off: recovery makes them
    /// (`AMQPConnection+TopologyRecovery.swift`), in this order, rather than declare the objects again.
    var cutOffDeletions: [TopologyDeletion] = []
}

/// A delete of recorded topology that may not have reached the broker (`deleteQueue`, `deleteExchange`,
/// `unbind` cut off by a connection loss).
enum TopologyDeletion: Hashable, CustomStringConvertible {
    case queue(String)
    case exchange(String)
    case binding(BindingDeclaration)

    /// For logs: the same words as `RecordedDeclaration`.
    var description: String {
        switch self {
        case .queue(let name): "queue '\(name)'"
        case .exchange(let name): "exchange '\(name)'"
        case .binding(let binding): RecordedDeclaration.binding(binding).description
        }
    }

    /// Whether `binding` goes with this: the binding itself, or one of a deleted queue or exchange.
    func goesWith(_ binding: BindingDeclaration) -> Bool {
        switch self {
        case .queue(let name): binding.destinationKind == .queue && binding.destination == name
        case .exchange(let name): binding.source == name || (binding.destinationKind == .exchange && binding.destination == name)
        case .binding(let own): own == binding
        }
    }
}

/// A delivery or return being assembled from its method, header and body frames.
struct ContentAssembly {
    enum Kind {
        case delivery(consumerTag: String, deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String)
        case returned(replyCode: UInt16, replyText: String, exchange: String, routingKey: String)
    }

    var kind: Kind
    var properties = BasicProperties()
    var bodySize = 0
    var body = Data()
}

/// Checks of values before they reach rabbitmq-c, which fails to encode a short string (names, routing
/// keys, most properties, table keys) longer than 255 bytes. Caught late, that would look like a broken
/// connection, or leave a publish half sent.
public enum ProtocolLimits {
    /// The longest short string (names, routing keys, most properties, table keys), in bytes.
    public static let shortStringMaximum = 255

    /// `value` cut to at most `bytes` bytes of UTF-8, at a character boundary.
    public static func truncated(_ value: String, bytes: Int = shortStringMaximum) -> String {
        guard value.utf8.count > bytes else { return value }
        var result = ""
        for character in value {
            guard result.utf8.count + character.utf8.count <= bytes else { break }
            result.append(character)
        }
        return result
    }

    /// Throws `.invalidArgument` when `value` is too long for a short string.
    static func checkShortString(_ value: String, _ what: @autoclosure () -> String,
                                 operation: @autoclosure () -> String) throws {
        let length = value.utf8.count
        guard length <= shortStringMaximum else {
            throw AMQPError(.invalidArgument, message: "\(what()) is \(length) bytes long; AMQP allows at most \(shortStringMaximum)",
                            operation: operation())
        }
    }

    /// Checks the keys of a table and of the tables nested in it.
    static func checkTable(_ table: FieldTable?, _ what: String, operation: @autoclosure () -> String) throws {
        for (key, value) in table ?? [:] {
            try checkShortString(key, "a key of \(what)", operation: operation())
            try checkValue(value, what, operation: operation())
        }
    }

    private static func checkValue(_ value: FieldValue, _ what: String, operation: @autoclosure () -> String) throws {
        switch value {
        case .table(let nested): try checkTable(nested, what, operation: operation())
        case .array(let values): for element in values { try checkValue(element, what, operation: operation()) }
        default: break
        }
    }

    /// Checks everything of a publish that travels as a short string (cheap: it runs for every publish),
    /// and that its properties fit in one header frame of `frameMax` bytes.
    static func check(_ request: PublishRequest, frameMax: Int) throws {
        let p = request.message.properties
        func fits(_ value: String?) -> Bool { (value?.utf8.count ?? 0) <= shortStringMaximum }
        let operation = { "publish to exchange '\(request.exchange.prefix(64))' key '\(request.routingKey.prefix(64))'" }
        // Nothing is allocated unless something is too long.
        if !(fits(request.exchange) && fits(request.routingKey) && fits(p.contentType) && fits(p.contentEncoding)
            && fits(p.correlationId) && fits(p.replyTo) && fits(p.expiration) && fits(p.messageId) && fits(p.type)
            && fits(p.userId) && fits(p.appId) && fits(p.clusterId)) {
            let fields: [(String?, String)] = [
                (request.exchange, "the exchange name"), (request.routingKey, "the routing key"),
                (p.contentType, "the content-type property"), (p.contentEncoding, "the content-encoding property"),
                (p.correlationId, "the correlation-id property"), (p.replyTo, "the reply-to property"),
                (p.expiration, "the expiration property"), (p.messageId, "the message-id property"),
                (p.type, "the type property"), (p.userId, "the user-id property"), (p.appId, "the app-id property"),
                (p.clusterId, "the cluster-id property"),
            ]
            for case (let value?, let name) in fields { try checkShortString(value, name, operation: operation()) }
        }
        try checkTable(p.headers, "the headers", operation: operation())
        // Only headers can make the properties large (everything else is a short string or a number).
        guard p.headers != nil, frameMax > 0 else { return }
        let size = HeaderFrameSize.of(p)
        let limit = frameMax - HeaderFrameSize.overhead
        guard size <= limit else {
            throw AMQPError(.invalidArgument, message: "the properties (mostly the headers) take \(size) bytes; one header frame holds at most \(limit) (frame_max \(frameMax))",
                            operation: operation())
        }
    }
}
