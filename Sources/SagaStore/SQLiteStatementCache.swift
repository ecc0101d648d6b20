/// Prepared statements keyed by their SQL text, with least-recently-used eviction.
///
/// Preparing is the expensive part of a small query (parsing and planning), and the store's hot path
/// repeats the same few dozen statements for every message, so each is compiled once per connection.
/// The capacity bounds memory when callers pass many distinct ad-hoc SQL strings to `query`/`run`.
struct SQLiteStatementCache {
    private struct Entry {
        let statement: SQLiteStatement
        var lastUsed: UInt64
    }

    /// The SQL text as the key, hashed by its length and last bytes only: hashing the whole text (a few
    /// hundred bytes for an INSERT) on every statement was measurable on the SQLite thread, and the end of
    /// a statement tells the cache's few dozen apart as well. Equality still compares the whole text.
    private struct Key: Hashable {
        let sql: String

        static func == (lhs: Key, rhs: Key) -> Bool { lhs.sql == rhs.sql }

        func hash(into hasher: inout Hasher) {
            hasher.combine(sql.utf8.count)
            let hashedTail: Void? = sql.utf8.withContiguousStorageIfAvailable { bytes in
                hasher.combine(bytes: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes.suffix(32))))
            }
            if hashedTail == nil { hasher.combine(sql) }
        }
    }

    let capacity: Int
    private var entries: [Key: Entry] = [:]
    private var clock: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { entries.count }

    mutating func statement(for sql: String) -> SQLiteStatement? {
        // One lookup: the hit is updated in place.
        guard let index = entries.index(forKey: Key(sql: sql)) else { return nil }
        clock &+= 1
        entries.values[index].lastUsed = clock
        return entries.values[index].statement
    }

    mutating func insert(_ statement: SQLiteStatement) {
        guard capacity > 0 else { return }
        let key = Key(sql: statement.sql)
        if entries.count >= capacity, entries[key] == nil {
            // An O(n) scan on eviction only: n is small and eviction is rare for a fixed query set.
            if let victim = entries.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                entries[victim] = nil  // deinit finalizes it
            }
        }
        clock &+= 1
        entries[key] = Entry(statement: statement, lastUsed: clock)
    }

    /// Drops (and so finalizes) every statement; required before the connection is closed.
    mutating func removeAll() {
        entries.removeAll()
    }
}
