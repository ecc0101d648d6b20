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

    let capacity: Int
    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { entries.count }

    mutating func statement(for sql: String) -> SQLiteStatement? {
        guard var entry = entries[sql] else { return nil }
        clock &+= 1
        entry.lastUsed = clock
        entries[sql] = entry
        return entry.statement
    }

    mutating func insert(_ statement: SQLiteStatement) {
        guard capacity > 0 else { return }
        if entries.count >= capacity, entries[statement.sql] == nil {
            // An O(n) scan on eviction only: n is small and eviction is rare for a fixed query set.
            if let victim = entries.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                entries[victim] = nil  // deinit finalizes it
            }
        }
        clock &+= 1
        entries[statement.sql] = Entry(statement: statement, lastUsed: clock)
    }

    /// Drops (and so finalizes) every statement; required before the connection is closed.
    mutating func removeAll() {
        entries.removeAll()
    }
}
