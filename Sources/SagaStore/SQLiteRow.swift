/// One result row, fully copied out of SQLite's memory.
///
/// Values are copied while the statement is still positioned on the row, because the pointers SQLite
/// returns for text and blobs are invalidated by the next step or reset. A row therefore outlives its
/// statement and may be sent anywhere.
public struct SQLiteRow: Sendable, Hashable {
    /// The result column names, shared (copy-on-write) by all rows of one query.
    public let columns: [String]
    public let values: [SQLiteValue]

    public init(columns: [String], values: [SQLiteValue]) {
        precondition(columns.count == values.count, "a row needs one value per column")
        self.columns = columns
        self.values = values
    }

    public var count: Int { values.count }

    public subscript(index: Int) -> SQLiteValue { values[index] }

    /// The value of the first column with this name, or nil if there is none.
    /// A linear search: rows are narrow, and a dictionary per row would cost more than it saves.
    public subscript(column name: String) -> SQLiteValue? {
        guard let index = columns.firstIndex(of: name) else { return nil }
        return values[index]
    }
}
