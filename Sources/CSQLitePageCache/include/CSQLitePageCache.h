// A thin wrapper around SQLite's own page cache that skips truncations with nothing to remove.
//
// Why: when a B-tree balance puts its new pages in order, SQLite 3.40 parks one of them for a moment
// under the lock-byte page's number (262,145 with 4 KiB pages). In a database smaller than 1 GiB that
// number lies beyond the file, so the page cache's highest key stays above the file's size after the
// page has moved on, and the truncation at the end of every write transaction then walks every hash
// bucket and page of the cache instead of the few above the end: 2-3% of the endpoint's CPU, 10-14%
// of its SQLite thread (more with a full 32 MiB cache). The wrapper keeps track of which keys can
// exist above the limit and only forwards a truncation that has something to remove.
#ifndef CSAGA_SQLITE_PAGE_CACHE_H
#define CSAGA_SQLITE_PAGE_CACHE_H

#include <stdint.h>

/// Installs the wrapper for every SQLite connection of the process. SQLite takes a page cache only
/// before it is initialized, so this must run before the first connection is opened; it returns the
/// result of `sqlite3_config` (SQLITE_MISUSE when SQLite was initialized already) and SQLITE_OK when
/// it was installed by an earlier call.
int csaga_sqlite_install_page_cache_guard(void);

/// Truncations the wrapper forwarded to SQLite's page cache and those it skipped, process-wide; and of
/// the skipped ones, those SQLite's cache would have searched for pages to remove (`scansSaved`: its
/// highest key was at or above the limit; a walk over every page when that key is the lock-byte page's).
void csaga_sqlite_page_cache_guard_counts(uint64_t *forwarded, uint64_t *skipped, uint64_t *scansSaved);

#endif
