import CSQLite
import CSQLitePageCache

/// SQLite's page cache, wrapped so that a write transaction's end does not scan the whole cache for
/// nothing (the C target `CSQLitePageCache` says why). The wrapper serves every connection of the
/// process and changes no result: it only skips truncations that would remove no page.
enum SQLitePageCacheGuard {
    /// Installed once, before the process's first connection: SQLite takes a page cache only before it
    /// initializes. False when something else in the process used SQLite first; connections then run on
    /// SQLite's cache as it is.
    static let installed: Bool = csaga_sqlite_install_page_cache_guard() == SQLITE_OK

    /// Truncations passed on to SQLite's cache, those skipped, and of these the ones for which SQLite's
    /// cache would have walked all its pages; process-wide.
    static var counts: (forwarded: UInt64, skipped: UInt64, scansSaved: UInt64) {
        var forwarded: UInt64 = 0
        var skipped: UInt64 = 0
        var scansSaved: UInt64 = 0
        csaga_sqlite_page_cache_guard_counts(&forwarded, &skipped, &scansSaved)
        return (forwarded, skipped, scansSaved)
    }
}
