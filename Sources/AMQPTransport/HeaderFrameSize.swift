import Foundation

/// The size of a message's properties as they travel in its content header frame, which must fit in one
/// frame (`frame_max`, 128 KiB by default): rabbitmq-c sends the publish's method frame first and only then
/// finds that the properties do not fit (`AMQP_STATUS_TABLE_TOO_BIG`), leaving the channel with half a
/// publish, so the connection must be dropped. Measured before sending, an oversized publish fails alone.
enum HeaderFrameSize {
    /// What the header frame holds besides the properties: frame header and end octet (8), class id,
    /// weight and body size (12).
    static let overhead = 20

    /// The encoded size of `properties`, flags included.
    static func of(_ p: BasicProperties) -> Int {
        func short(_ value: String?) -> Int { value.map { 1 + $0.utf8.count } ?? 0 }
        var size = 2
        size += short(p.contentType) + short(p.contentEncoding) + short(p.correlationId) + short(p.replyTo)
        size += short(p.expiration) + short(p.messageId) + short(p.type) + short(p.userId) + short(p.appId)
        size += short(p.clusterId)
        if p.deliveryMode != nil { size += 1 }
        if p.priority != nil { size += 1 }
        if p.timestamp != nil { size += 8 }
        if let headers = p.headers { size += table(headers) }
        return size
    }

    static func table(_ table: FieldTable) -> Int {
        var size = 4
        for (key, value) in table { size += 1 + key.utf8.count + self.value(value) }
        return size
    }

    /// A field value with its type octet.
    static func value(_ value: FieldValue) -> Int {
        switch value {
        case .bool, .int8, .uint8: 2
        case .int16, .uint16: 3
        case .int32, .uint32, .float: 5
        case .int64, .uint64, .double, .timestamp: 9
        case .decimal: 6
        case .string(let string): 5 + string.utf8.count
        case .bytes(let data): 5 + data.count
        case .table(let nested): 1 + table(nested)
        case .array(let values): 5 + values.reduce(0) { $0 + self.value($1) }
        case .void: 1
        }
    }
}
