// Thin shim over SQLite for Swift.
//
// Why it exists: `SQLITE_TRANSIENT` and `SQLITE_STATIC` are casts of integers to function pointers,
// which the Swift importer drops; binding text and blobs needs them.
#ifndef CSAGA_SQLITE_SHIM_H
#define CSAGA_SQLITE_SHIM_H

#include <sqlite3.h>

static inline int csaga_sqlite3_bind_text_transient(sqlite3_stmt *stmt, int index, const char *text, int bytes) {
  return sqlite3_bind_text(stmt, index, text, bytes, SQLITE_TRANSIENT);
}

static inline int csaga_sqlite3_bind_blob_transient(sqlite3_stmt *stmt, int index, const void *blob, int bytes) {
  return sqlite3_bind_blob(stmt, index, blob, bytes, SQLITE_TRANSIENT);
}

#endif
