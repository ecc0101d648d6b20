import Logging

/// The store's schema as an ordered list of migrations, versioned with `PRAGMA user_version`.
///
/// Rules: a migration, once shipped, is never edited (databases in the field already ran it); changes
/// are new migrations appended to the list. Migration N takes the schema from version N-1 to N.
enum SagaStoreSchema {
    struct Migration {
        let version: Int
        let name: String
        let sql: String
    }

    static let migrations: [Migration] = [
        Migration(
            version: 1,
            name: "initial schema: sagas, inbox, outbox, timeouts, failures",
            sql: """
                CREATE TABLE sagas (
                    saga_type TEXT NOT NULL,
                    correlation_id TEXT NOT NULL,
                    saga_id TEXT NOT NULL UNIQUE,
                    state TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    originator_reply_to TEXT,
                    originator_correlation_id TEXT,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    PRIMARY KEY (saga_type, correlation_id)
                );
                CREATE INDEX sagas_by_created_at ON sagas (created_at);

                CREATE TABLE inbox (
                    message_id TEXT NOT NULL PRIMARY KEY,
                    queue TEXT NOT NULL,
                    processed_at REAL NOT NULL
                );
                CREATE INDEX inbox_by_processed_at ON inbox (processed_at);

                CREATE TABLE outbox (
                    message_id TEXT NOT NULL PRIMARY KEY,
                    incoming_message_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    exchange TEXT NOT NULL,
                    routing_key TEXT NOT NULL,
                    mandatory INTEGER NOT NULL,
                    message_type TEXT NOT NULL,
                    correlation_id TEXT,
                    reply_to TEXT,
                    headers TEXT NOT NULL,
                    body BLOB NOT NULL,
                    created_at REAL NOT NULL,
                    dispatched_at REAL
                );
                CREATE INDEX outbox_by_incoming ON outbox (incoming_message_id);
                CREATE INDEX outbox_by_dispatched_at ON outbox (dispatched_at);

                CREATE TABLE timeouts (
                    timeout_id TEXT NOT NULL PRIMARY KEY,
                    saga_type TEXT NOT NULL,
                    correlation_id TEXT NOT NULL,
                    due_at REAL NOT NULL,
                    message_type TEXT NOT NULL,
                    body BLOB NOT NULL,
                    headers TEXT NOT NULL,
                    created_at REAL NOT NULL
                );
                CREATE INDEX timeouts_by_due_at ON timeouts (due_at);
                CREATE INDEX timeouts_by_saga ON timeouts (saga_type, correlation_id);

                CREATE TABLE failures (
                    message_id TEXT NOT NULL PRIMARY KEY,
                    attempts INTEGER NOT NULL,
                    first_failure_at REAL NOT NULL,
                    last_failure_at REAL NOT NULL,
                    last_error TEXT NOT NULL,
                    retry_after REAL
                );
                """
        ),
        Migration(
            version: 2,
            name: "delivery counts",
            // Deliveries of a message that never completed processing: a message that crashes the process
            // (rather than throwing) is recognised by being delivered again and again.
            sql: """
                CREATE TABLE deliveries (
                    message_id TEXT NOT NULL PRIMARY KEY,
                    count INTEGER NOT NULL,
                    last_delivered_at REAL NOT NULL
                );
                """
        ),
        Migration(
            version: 3,
            name: "fewer random-keyed indexes on sagas and timeouts",
            // Every index keyed by a random id costs each insert a write to a random leaf page, and with a
            // million live sagas those pages no longer fit the page cache. Nothing looks a saga up by
            // saga_id, so its UNIQUE index goes (the id is a random UUID). A timeout is always deleted
            // knowing its saga, so one index on (saga, timeout id) replaces the timeout_id primary key
            // and the per-saga index. SQLite cannot drop a constraint in place: both tables are copied.
            sql: """
                CREATE TABLE sagas_v3 (
                    saga_type TEXT NOT NULL,
                    correlation_id TEXT NOT NULL,
                    saga_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    originator_reply_to TEXT,
                    originator_correlation_id TEXT,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    PRIMARY KEY (saga_type, correlation_id)
                );
                INSERT INTO sagas_v3 (saga_type, correlation_id, saga_id, state, version, originator_reply_to,
                                      originator_correlation_id, created_at, updated_at)
                    SELECT saga_type, correlation_id, saga_id, state, version, originator_reply_to,
                           originator_correlation_id, created_at, updated_at
                    FROM sagas ORDER BY created_at;
                DROP TABLE sagas;
                ALTER TABLE sagas_v3 RENAME TO sagas;
                CREATE INDEX sagas_by_created_at ON sagas (created_at);

                CREATE TABLE timeouts_v3 (
                    timeout_id TEXT NOT NULL,
                    saga_type TEXT NOT NULL,
                    correlation_id TEXT NOT NULL,
                    due_at REAL NOT NULL,
                    message_type TEXT NOT NULL,
                    body BLOB NOT NULL,
                    headers TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    UNIQUE (saga_type, correlation_id, timeout_id)
                );
                INSERT INTO timeouts_v3 (timeout_id, saga_type, correlation_id, due_at, message_type, body, headers,
                                         created_at)
                    SELECT timeout_id, saga_type, correlation_id, due_at, message_type, body, headers, created_at
                    FROM timeouts ORDER BY created_at;
                DROP TABLE timeouts;
                ALTER TABLE timeouts_v3 RENAME TO timeouts;
                CREATE INDEX timeouts_by_due_at ON timeouts (due_at);
                """
        ),
        Migration(
            version: 4,
            name: "outbox keyed by incoming message and position",
            // The outbox had two random-keyed indexes (message_id, incoming_message_id); one on (incoming
            // message, position) serves both the duplicate path (rows of one incoming message) and the
            // marking of confirmed rows. An outgoing id is no longer unique here: a command a saga sends
            // again under its first id simply gets a row of its own (downstream inboxes drop the copy).
            sql: """
                CREATE TABLE outbox_v4 (
                    message_id TEXT NOT NULL,
                    incoming_message_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    exchange TEXT NOT NULL,
                    routing_key TEXT NOT NULL,
                    mandatory INTEGER NOT NULL,
                    message_type TEXT NOT NULL,
                    correlation_id TEXT,
                    reply_to TEXT,
                    headers TEXT NOT NULL,
                    body BLOB NOT NULL,
                    created_at REAL NOT NULL,
                    dispatched_at REAL,
                    UNIQUE (incoming_message_id, position)
                );
                INSERT INTO outbox_v4 (message_id, incoming_message_id, position, exchange, routing_key, mandatory,
                                       message_type, correlation_id, reply_to, headers, body, created_at, dispatched_at)
                    SELECT message_id, incoming_message_id, position, exchange, routing_key, mandatory, message_type,
                           correlation_id, reply_to, headers, body, created_at, dispatched_at
                    FROM outbox ORDER BY created_at;
                DROP TABLE outbox;
                ALTER TABLE outbox_v4 RENAME TO outbox;
                CREATE INDEX outbox_by_dispatched_at ON outbox (dispatched_at);
                """
        ),
        Migration(
            version: 5,
            name: "timeouts and outbox keyed by sequential row numbers",
            // Rows of one saga or one incoming message are written together and long after one another, so
            // keying the outbox and the timeouts by the random ids of their owners put every insert on a
            // random leaf page of a large index (one more page to write per message, and with a million
            // live sagas one more page to read). They now point at their owner's row number instead, which
            // grows with time: a new saga's timeouts and a new message's outbox rows land on the last pages.
            // The row numbers are explicit INTEGER PRIMARY KEY columns, so a VACUUM cannot renumber them.
            // The inbox's numbers never repeat (AUTOINCREMENT): its old rows are purged while outbox rows
            // that point at them may be kept. Rows whose owner is not stored (a delayed retry's timeout;
            // an outbox row written without an inbox row) point at nothing and have partial indexes of
            // their own on the ids.
            sql: """
                CREATE TABLE sagas_v5 (
                    seq INTEGER PRIMARY KEY,
                    saga_type TEXT NOT NULL,
                    correlation_id TEXT NOT NULL,
                    saga_id TEXT NOT NULL,
                    state TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    originator_reply_to TEXT,
                    originator_correlation_id TEXT,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    UNIQUE (saga_type, correlation_id)
                );
                INSERT INTO sagas_v5 (seq, saga_type, correlation_id, saga_id, state, version, originator_reply_to,
                                      originator_correlation_id, created_at, updated_at)
                    SELECT rowid, saga_type, correlation_id, saga_id, state, version, originator_reply_to,
                           originator_correlation_id, created_at, updated_at
                    FROM sagas ORDER BY rowid;
                DROP TABLE sagas;
                ALTER TABLE sagas_v5 RENAME TO sagas;
                CREATE INDEX sagas_by_created_at ON sagas (created_at);

                CREATE TABLE inbox_v5 (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    message_id TEXT NOT NULL UNIQUE,
                    queue TEXT NOT NULL,
                    processed_at REAL NOT NULL
                );
                INSERT INTO inbox_v5 (message_id, queue, processed_at)
                    SELECT message_id, queue, processed_at FROM inbox ORDER BY processed_at;
                DROP TABLE inbox;
                ALTER TABLE inbox_v5 RENAME TO inbox;
                CREATE INDEX inbox_by_processed_at ON inbox (processed_at);

                CREATE TABLE outbox_v5 (
                    seq INTEGER PRIMARY KEY,
                    inbox_seq INTEGER,
                    message_id TEXT NOT NULL,
                    incoming_message_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    exchange TEXT NOT NULL,
                    routing_key TEXT NOT NULL,
                    mandatory INTEGER NOT NULL,
                    message_type TEXT NOT NULL,
                    correlation_id TEXT,
                    reply_to TEXT,
                    headers TEXT NOT NULL,
                    body BLOB NOT NULL,
                    created_at REAL NOT NULL,
                    dispatched_at REAL,
                    UNIQUE (inbox_seq, position)
                );
                INSERT INTO outbox_v5 (inbox_seq, message_id, incoming_message_id, position, exchange, routing_key,
                                       mandatory, message_type, correlation_id, reply_to, headers, body, created_at,
                                       dispatched_at)
                    SELECT (SELECT seq FROM inbox WHERE inbox.message_id = outbox.incoming_message_id),
                           message_id, incoming_message_id, position, exchange, routing_key, mandatory,
                           message_type, correlation_id, reply_to, headers, body, created_at, dispatched_at
                    FROM outbox ORDER BY rowid;
                DROP TABLE outbox;
                ALTER TABLE outbox_v5 RENAME TO outbox;
                CREATE UNIQUE INDEX outbox_without_inbox ON outbox (incoming_message_id, position)
                    WHERE inbox_seq IS NULL;
                CREATE INDEX outbox_by_dispatched_at ON outbox (dispatched_at);

                CREATE TABLE timeouts_v5 (
                    seq INTEGER PRIMARY KEY,
                    saga_seq INTEGER,
                    timeout_id TEXT NOT NULL,
                    saga_type TEXT NOT NULL,
                    correlation_id TEXT NOT NULL,
                    due_at REAL NOT NULL,
                    message_type TEXT NOT NULL,
                    body BLOB NOT NULL,
                    headers TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    UNIQUE (saga_seq, timeout_id)
                );
                INSERT INTO timeouts_v5 (saga_seq, timeout_id, saga_type, correlation_id, due_at, message_type, body,
                                         headers, created_at)
                    SELECT (SELECT seq FROM sagas WHERE sagas.saga_type = timeouts.saga_type
                                                  AND sagas.correlation_id = timeouts.correlation_id),
                           timeout_id, saga_type, correlation_id, due_at, message_type, body, headers, created_at
                    FROM timeouts ORDER BY rowid;
                DROP TABLE timeouts;
                ALTER TABLE timeouts_v5 RENAME TO timeouts;
                CREATE UNIQUE INDEX timeouts_without_saga ON timeouts (saga_type, correlation_id, timeout_id)
                    WHERE saga_seq IS NULL;
                CREATE INDEX timeouts_by_due_at ON timeouts (due_at);
                """
        ),
    ]

    /// The version this build understands: the last migration's.
    static var currentVersion: Int { migrations.last?.version ?? 0 }

    static func userVersion(_ connection: SQLiteConnection) throws(SQLiteError) -> Int {
        Int(try connection.query("PRAGMA user_version").first?[0].integerValue ?? 0)
    }

    /// The tables of the store (of any version) that the file holds.
    static func storeTables(_ connection: SQLiteConnection) throws(SQLiteError) -> [String] {
        try connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
                + "('sagas', 'inbox', 'outbox', 'timeouts', 'failures', 'deliveries') ORDER BY name"
        ).compactMap { $0[0].textValue }
    }

    /// Refuses a file at version 0 that holds the store's tables: migrating it from scratch failed with
    /// "table sagas already exists" (a file rebuilt with sqlite3's `.dump`, which leaves the version out).
    static func refuseUnversionedTables(_ connection: SQLiteConnection, version: Int) throws {
        guard version == 0 else { return }
        let tables = try storeTables(connection)
        if !tables.isEmpty { throw SagaStoreError.schemaVersionMissing(tables: tables, supported: currentVersion) }
    }

    /// Brings the database up to `currentVersion`, or refuses a database from the future.
    ///
    /// Runs in one IMMEDIATE transaction: the version is re-read under the write lock, so two processes
    /// opening a fresh file at once cannot both apply a migration, and a failed migration leaves the
    /// database at its previous version (SQLite DDL and `user_version` are transactional).
    static func migrate(_ connection: SQLiteConnection, logger: Logger) throws {
        // Cheap check first, so an up-to-date database is opened without taking the write lock.
        let before = try userVersion(connection)
        if before > currentVersion {
            throw SagaStoreError.schemaTooNew(found: before, supported: currentVersion)
        }
        if before == currentVersion { return }

        try connection.transaction(immediate: true) {
            let found = try userVersion(connection)
            if found > currentVersion {
                throw SagaStoreError.schemaTooNew(found: found, supported: currentVersion)
            }
            try refuseUnversionedTables(connection, version: found)
            // A new file is created through the same steps, but it is not an upgrade: one line says so. Five
            // "applying schema migration" lines on a first start read like an upgrade of an existing store.
            if found == 0 {
                logger.info("creating the database schema", metadata: [
                    "path": "\(connection.path)", "version": "\(currentVersion)"])
            }
            for migration in migrations where migration.version > found {
                logger.log(
                    level: found == 0 ? .debug : .info,
                    "applying schema migration",
                    metadata: [
                        "path": "\(connection.path)",
                        "version": "\(migration.version)",
                        "migration": "\(migration.name)",
                    ]
                )
                try connection.execute(migration.sql)
                // PRAGMA values cannot be bound; the version is our own integer, not input.
                try connection.execute("PRAGMA user_version = \(migration.version)")
            }
        }
    }
}
