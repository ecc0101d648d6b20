public import Foundation

/// A value in an AMQP field table (message headers, queue and exchange arguments).
public indirect enum FieldValue: Sendable, Hashable {
    case bool(Bool)
    case int8(Int8)
    case uint8(UInt8)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
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
