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
struct HeaderCoding {
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    private let decoder = JSONDecoder()

    func encode(_ headers: [String: String]) -> SQLiteValue {
        // Encoding a [String: String] cannot fail; "{}" is only a formal fallback.
        guard let data = try? encoder.encode(headers) else { return .text("{}") }
        return .text(String(decoding: data, as: UTF8.self))
    }

    func decode(_ text: String, table: String) throws -> [String: String] {
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
