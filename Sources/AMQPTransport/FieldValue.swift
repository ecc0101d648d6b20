public import Foundation

/// A value in an AMQP field table (message headers, queue and exchange arguments).
///
/// What RabbitMQ (3.10, checked by the transport's tests) does with each kind: it accepts every kind
/// below in message headers and in binding arguments (a headers exchange matches on all of them), and
/// forwards message headers byte for byte, so a consumer normally decodes exactly the kinds that were
/// published. When the broker re-encodes the headers itself (dead-lettering does, to add `x-death`),
/// every kind keeps its type except `uint64`, which comes back as `int64` with the same 64 bits: values
/// above `Int64.max` turn negative (`Int64(bitPattern:)`). So publish numbers that may exceed
/// `Int64.max` as strings, and read integers with `intValue`, which accepts every integer kind.
public indirect enum FieldValue: Sendable, Hashable {
    case bool(Bool)
    case int8(Int8)
    case uint8(UInt8)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    /// AMQP 'L'. RabbitMQ re-encodes it as `int64` ('l') whenever it rewrites the headers (see above).
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    case decimal(scale: UInt8, value: UInt32)
    case string(String)
    case bytes(Data)
    /// Seconds since 1970, as AMQP timestamps are.
    case timestamp(UInt64)
    case table(FieldTable)
    case array([FieldValue])
    case void

    /// The value as a string, when it is one (long strings and byte strings holding UTF-8).
    public var stringValue: String? {
        switch self {
        case .string(let s): s
        case .bytes(let d): String(data: d, encoding: .utf8)
        default: nil
        }
    }

    /// The value as an integer, when it is an integer of any width that fits.
    public var intValue: Int? {
        switch self {
        case .int8(let v): Int(v)
        case .uint8(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int64(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .timestamp(let v): Int(exactly: v)
        default: nil
        }
    }
}

/// An AMQP field table: string keys to values.
public typealias FieldTable = [String: FieldValue]

extension FieldValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
}
