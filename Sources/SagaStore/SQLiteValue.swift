public import Foundation

/// One SQLite value, used both to bind statement parameters and to read result columns.
///
/// It mirrors SQLite's five storage classes exactly, so nothing is lost or guessed in either direction;
/// higher-level types (dates, booleans, JSON) are mapped by the caller, which knows what a column means.
public enum SQLiteValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The integer, or a real with no fractional part (SQLite may hand back either for a numeric column).
    public var integerValue: Int64? {
        switch self {
        case .integer(let value): return value
        case .real(let value): return Int64(exactly: value)
        default: return nil
        }
    }

    /// The real, or an integer widened to a real: a REAL column can store an integral value as INTEGER.
    public var realValue: Double? {
        switch self {
        case .real(let value): return value
        case .integer(let value): return Double(value)
        default: return nil
        }
    }

    public var textValue: String? {
        if case .text(let value) = self { return value }
        return nil
    }

    public var blobValue: Data? {
        if case .blob(let value) = self { return value }
        return nil
    }
}

extension SQLiteValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: return "NULL"
        case .integer(let value): return String(value)
        case .real(let value): return String(value)
        case .text(let value): return "'\(value)'"
        case .blob(let value): return "<blob \(value.count) bytes>"
        }
    }
}

// Literals keep call sites such as `run(sql, ["a", 1, nil])` readable.
extension SQLiteValue: ExpressibleByNilLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByBooleanLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .real(value) }
    public init(stringLiteral value: String) { self = .text(value) }
    /// SQLite has no boolean type; 0 and 1 are its convention.
    public init(booleanLiteral value: Bool) { self = .integer(value ? 1 : 0) }
}
