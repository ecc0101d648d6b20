public import Logging

extension SagaStore {
    /// The tables of another application in the SQLite file at `path`: those of a file with no schema
    /// version and none of the store's tables, but tables of its own; empty for a store (of any version)
    /// and for an empty file. Opens the file without changing it (its journal mode stays as it is). Throws
    /// `SQLiteError` when it is not an SQLite database.
    ///
    /// For tools that take a path from an operator: the store, opened on a mistyped `--database`, put its
    /// tables into that other application's file and switched it to WAL, without a word.
    public static func foreignTables(inFileAt path: String,
                                     logger: Logger = Logger(label: "SagaStore")) throws(SQLiteError) -> [String] {
        let connection = try SQLiteConnection(path: path, options: Options(switchesToWAL: false), logger: logger)
        defer { connection.close() }
        guard try SagaStoreSchema.userVersion(connection) == 0, try SagaStoreSchema.storeTables(connection).isEmpty else {
            return []
        }
        return try connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).compactMap { $0[0].textValue }
    }
}
