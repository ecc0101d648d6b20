// See include/CSQLitePageCache.h for why this exists.
//
// Every cache belongs to one connection, and SQLite calls a cache's methods only from the thread using
// that connection (or under its mutex), so a cache's own fields need no lock; the counters and the
// one-time installation are process-wide and atomic.
#include "CSQLitePageCache.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <pthread.h>

/// SQLite's own page cache (pcache1), which does the work.
static sqlite3_pcache_methods2 base;

enum { TRACKED = 8 };

typedef struct Guard {
    sqlite3_pcache *inner;
    /// The highest key the cache handed out through xFetch since its last forwarded truncation: every
    /// fetched page's key is at most this.
    unsigned maxFetched;
    /// Pages moved (xRekey) to a key above `maxFetched`, with their keys. A stale entry (the page was
    /// recycled or freed meanwhile) only makes the wrapper forward a truncation it could have skipped.
    int count;
    sqlite3_pcache_page *pages[TRACKED];
    unsigned keys[TRACKED];
    /// More such pages than there are slots: forward every truncation from now on.
    int overflowed;
    /// What SQLite's cache takes for its highest key (it lowers it only in a truncation): a skipped
    /// truncation at or below it is a search of the cache saved.
    unsigned innerMaxKey;
} Guard;

static _Atomic uint64_t forwardedCount;
static _Atomic uint64_t skippedCount;
static _Atomic uint64_t scansSavedCount;

static void untrack(Guard *guard, sqlite3_pcache_page *page) {
    for (int i = 0; i < guard->count; i++) {
        if (guard->pages[i] == page) {
            guard->count -= 1;
            guard->pages[i] = guard->pages[guard->count];
            guard->keys[i] = guard->keys[guard->count];
            return;
        }
    }
}

static int guardInit(void *arg) {
    (void)arg;
    return base.xInit ? base.xInit(base.pArg) : SQLITE_OK;
}

static void guardShutdown(void *arg) {
    (void)arg;
    if (base.xShutdown) base.xShutdown(base.pArg);
}

static sqlite3_pcache *guardCreate(int pageSize, int extraSize, int purgeable) {
    Guard *guard = sqlite3_malloc(sizeof(Guard));
    if (!guard) return 0;
    guard->inner = base.xCreate(pageSize, extraSize, purgeable);
    if (!guard->inner) {
        sqlite3_free(guard);
        return 0;
    }
    guard->maxFetched = 0;
    guard->count = 0;
    guard->overflowed = 0;
    guard->innerMaxKey = 0;
    return (sqlite3_pcache *)guard;
}

static void guardCachesize(sqlite3_pcache *cache, int pages) {
    base.xCachesize(((Guard *)cache)->inner, pages);
}

static int guardPagecount(sqlite3_pcache *cache) {
    return base.xPagecount(((Guard *)cache)->inner);
}

static sqlite3_pcache_page *guardFetch(sqlite3_pcache *cache, unsigned key, int createFlag) {
    Guard *guard = (Guard *)cache;
    sqlite3_pcache_page *page = base.xFetch(guard->inner, key, createFlag);
    if (page) {
        if (key > guard->maxFetched) guard->maxFetched = key;
        if (key > guard->innerMaxKey) guard->innerMaxKey = key;
        // A recycled page comes back under its new key.
        if (guard->count) untrack(guard, page);
    }
    return page;
}

static void guardUnpin(sqlite3_pcache *cache, sqlite3_pcache_page *page, int discard) {
    Guard *guard = (Guard *)cache;
    if (discard && guard->count) untrack(guard, page);
    base.xUnpin(guard->inner, page, discard);
}

static void guardRekey(sqlite3_pcache *cache, sqlite3_pcache_page *page, unsigned oldKey, unsigned newKey) {
    Guard *guard = (Guard *)cache;
    base.xRekey(guard->inner, page, oldKey, newKey);
    if (guard->count) untrack(guard, page);
    if (newKey > guard->innerMaxKey) guard->innerMaxKey = newKey;
    if (newKey > guard->maxFetched) {
        if (guard->count < TRACKED) {
            guard->pages[guard->count] = page;
            guard->keys[guard->count] = newKey;
            guard->count += 1;
        } else {
            guard->overflowed = 1;
        }
    }
}

static void guardTruncate(sqlite3_pcache *cache, unsigned limit) {
    Guard *guard = (Guard *)cache;
    // Removes the pages whose key is `limit` or more. Skipped when there can be none.
    int needed = guard->overflowed || guard->maxFetched >= limit;
    for (int i = 0; !needed && i < guard->count; i++) needed = guard->keys[i] >= limit;
    if (!needed) {
        atomic_fetch_add_explicit(&skippedCount, 1, memory_order_relaxed);
        if (limit <= guard->innerMaxKey) atomic_fetch_add_explicit(&scansSavedCount, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&forwardedCount, 1, memory_order_relaxed);
    base.xTruncate(guard->inner, limit);
    if (limit <= guard->innerMaxKey) guard->innerMaxKey = limit ? limit - 1 : 0;
    if (guard->maxFetched >= limit) guard->maxFetched = limit ? limit - 1 : 0;
    for (int i = 0; i < guard->count;) {
        if (guard->keys[i] >= limit) {
            guard->count -= 1;
            guard->pages[i] = guard->pages[guard->count];
            guard->keys[i] = guard->keys[guard->count];
        } else {
            i++;
        }
    }
}

static void guardDestroy(sqlite3_pcache *cache) {
    Guard *guard = (Guard *)cache;
    base.xDestroy(guard->inner);
    sqlite3_free(guard);
}

static void guardShrink(sqlite3_pcache *cache) {
    base.xShrink(((Guard *)cache)->inner);
}

static int installResult = -1;

static void install(void) {
    sqlite3_pcache_methods2 current;
    int rc = sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &current);
    if (rc != SQLITE_OK) {
        installResult = rc;
        return;
    }
    base = current;
    static sqlite3_pcache_methods2 methods = {
        1, 0, guardInit, guardShutdown, guardCreate, guardCachesize, guardPagecount, guardFetch,
        guardUnpin, guardRekey, guardTruncate, guardDestroy, guardShrink,
    };
    installResult = sqlite3_config(SQLITE_CONFIG_PCACHE2, &methods);
}

int csaga_sqlite_install_page_cache_guard(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
    return installResult;
}

void csaga_sqlite_page_cache_guard_counts(uint64_t *forwarded, uint64_t *skipped, uint64_t *scansSaved) {
    *forwarded = atomic_load_explicit(&forwardedCount, memory_order_relaxed);
    *skipped = atomic_load_explicit(&skippedCount, memory_order_relaxed);
    *scansSaved = atomic_load_explicit(&scansSavedCount, memory_order_relaxed);
}
