import Foundation

// Mapping between record fields and SQLite values, in one place so every table agrees:
// dates are REAL seconds since 1970, booleans INTEGER 0/1, header maps TEXT holding a JSON object.

extension SQLiteValue {
    init(_ date: Date) { self = .real(date.timeIntervalSince1970) }
    init(_ date: Date?) { self = date.map { .real($0.timeIntervalSince1970) } ?? .null }
    init(_ text: String?) { self = text.map { .text($0) } ?? .null }
    init(_ int: Int) { self = .integer(Int64(int)) }
}

/// JSON coding of header maps. Keys are sorted so the same headers always produce the same text.
///
/// Encoding is written out by hand: it runs for every outgoing message and timeout, and JSONEncoder
/// costs several microseconds even for an empty map. The output is plain JSON that JSONDecoder reads.
struct HeaderCoding {
    private let decoder = JSONDecoder()

    func encode(_ headers: [String: String]) -> SQLiteValue {
        guard !headers.isEmpty else { return .text("{}") }
        var text = "{"
        for (index, key) in headers.keys.sorted().enumerated() {
            if index > 0 { text += "," }
            Self.appendQuoted(key, to: &text)
            text += ":"
            Self.appendQuoted(headers[key]!, to: &text)
        }
        text += "}"
        return .text(text)
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped (RFC 8259 §7).
    static func appendQuoted(_ value: String, to text: inout String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }

    func decode(_ text: String, table: String) throws -> [String: String] {
        if text == "{}" { return [:] }
        do {
            return try decoder.decode([String: String].self, from: Data(text.utf8))
        } catch {
            throw SagaStoreError.corruptRow(table: table, detail: "headers are not a JSON object of strings: \(error)")
        }
    }
}

/// Reads typed columns from a row by index, turning any surprise into `SagaStoreError.corruptRow`
/// (naming the column) instead of a crash or a silently wrong default.
struct RowReader {
    let row: SQLiteRow
    let table: String

    private func corrupt(_ index: Int, _ expected: String) -> SagaStoreError {
        let name = index < row.columns.count ? row.columns[index] : "#\(index)"
        let found = index < row.count ? row[index].description : "missing"
        return .corruptRow(table: table, detail: "column \(name): expected \(expected), found \(found)")
    }

    func text(_ index: Int) throws -> String {
        guard index < row.count, let value = row[index].textValue else { throw corrupt(index, "TEXT") }
        return value
    }

    func optionalText(_ index: Int) throws -> String? {
        guard index < row.count else { throw corrupt(index, "TEXT or NULL") }
        if row[index].isNull { return nil }
        return try text(index)
    }

    func int(_ index: Int) throws -> Int {
        guard index < row.count, let value = row[index].integerValue, let int = Int(exactly: value) else {
            throw corrupt(index, "INTEGER")
        }
        return int
    }

    func int64(_ index: Int) throws -> Int64 {
        guard index < row.count, let value = row[index].integerValue else { throw corrupt(index, "INTEGER") }
        return value
    }

    func bool(_ index: Int) throws -> Bool { try int(index) != 0 }

    func date(_ index: Int) throws -> Date {
        guard index < row.count, let seconds = row[index].realValue else { throw corrupt(index, "REAL") }
        return Date(timeIntervalSince1970: seconds)
    }

    func optionalDate(_ index: Int) throws -> Date? {
        guard index < row.count else { throw corrupt(index, "REAL or NULL") }
        if row[index].isNull { return nil }
        return try date(index)
    }

    /// Bytes from a BLOB column, or from TEXT (the JSON state column is TEXT).
    func data(_ index: Int) throws -> Data {
        guard index < row.count else { throw corrupt(index, "BLOB") }
        switch row[index] {
        case .blob(let data): return data
        case .text(let text): return Data(text.utf8)
        default: throw corrupt(index, "BLOB")
        }
    }

    func headers(_ index: Int, _ coding: HeaderCoding) throws -> [String: String] {
        try coding.decode(try text(index), table: table)
    }
}
