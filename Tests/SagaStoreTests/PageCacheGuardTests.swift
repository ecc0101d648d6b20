import Foundation
import Testing
@testable import SagaStore

/// The wrapper around SQLite's page cache (`CSQLitePageCache`): it must change no result, and it must
/// skip the truncations for which SQLite's own cache would have walked its hash table although no page
/// was above the limit (what B-tree balances with random keys cause in a file under 1 GiB).
@Suite struct PageCacheGuardTests {
    @Test("random inserts in a small file: the needless truncation scans are skipped, the data is intact")
    func randomInsertsSkipNeedlessScans() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        #expect(SQLitePageCacheGuard.installed)
        try connection.execute("CREATE TABLE t (key TEXT NOT NULL UNIQUE, value BLOB NOT NULL)")
        let before = SQLitePageCacheGuard.counts
        var keys: [String] = []
        for _ in 0..<40 {
            try connection.transaction {
                for _ in 0..<100 {
                    let key = UUID().uuidString
                    keys.append(key)
                    try connection.run("INSERT INTO t (key, value) VALUES (?, zeroblob(200))", [.text(key)])
                }
            }
        }
        let after = SQLitePageCacheGuard.counts
        // Balances of the random-keyed index park pages above the file's end; SQLite's cache would have
        // scanned at the end of those transactions.
        #expect(after.scansSaved > before.scansSaved)
        #expect(try connection.query("PRAGMA integrity_check").first?[0] == .text("ok"))
        #expect(try connection.query("SELECT count(*) FROM t").first?[0] == .integer(Int64(keys.count)))
        for key in keys.shuffled().prefix(200) {
            #expect(try connection.query("SELECT count(*) FROM t WHERE key = ?", [.text(key)]).first?[0] == .integer(1))
        }
    }

    @Test("a rolled-back transaction that grew the file: its pages leave the cache, later reads see the file")
    func rollbackOfGrowthTruncates() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let connection = try openConnection(database)
        try connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, value BLOB NOT NULL)")
        try connection.transaction {
            for id in 0..<100 { try connection.run("INSERT INTO t (id, value) VALUES (?, zeroblob(1000))", [.integer(Int64(id))]) }
        }
        let pages = try connection.query("PRAGMA page_count").first?[0]
        let before = SQLitePageCacheGuard.counts
        struct Abandon: Error {}
        #expect(throws: Abandon.self) {
            try connection.transaction {
                for id in 100..<2_000 {
                    try connection.run("INSERT INTO t (id, value) VALUES (?, randomblob(1000))", [.integer(Int64(id))])
                }
                throw Abandon()
            }
        }
        // The pages past the old end were in the cache: this truncation had something to remove.
        #expect(SQLitePageCacheGuard.counts.forwarded > before.forwarded)
        #expect(try connection.query("PRAGMA page_count").first?[0] == pages)
        // The same page numbers are used again, with other content: nothing stale may be read back.
        try connection.transaction {
            for id in 100..<2_000 { try connection.run("INSERT INTO t (id, value) VALUES (?, zeroblob(1000))", [.integer(Int64(id))]) }
        }
        let totals = try connection.query("SELECT count(*), sum(length(value)) FROM t").first
        #expect(totals?[0] == .integer(2_000))
        #expect(totals?[1] == .integer(2_000_000))
        #expect(try connection.query("SELECT count(*) FROM t WHERE value != zeroblob(1000)").first?[0] == .integer(0))
        #expect(try connection.query("PRAGMA integrity_check").first?[0] == .text("ok"))
    }
}
