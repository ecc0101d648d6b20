extension SagaStore {
    /// Records `endpoint` as the one endpoint whose store this file is, unless another one was recorded:
    /// returns that other endpoint's name, or nil when the file is (now) `endpoint`'s.
    ///
    /// Why: two endpoints on one file share its timeouts and parked retries, and each takes every due row.
    /// The bank simulator, started on the transfer endpoint's file (a mistyped `--database`), took a
    /// TransferSaga timeout and moved it to its own error queue as NoHandler: the saga never got it.
    /// Processes of one endpoint (competing consumers) share a file by design and record the same name.
    ///
    /// The record is a one-row table beside the versioned schema (`CREATE TABLE IF NOT EXISTS`): a file
    /// written before it existed is claimed by the first endpoint that starts on it, and a build that
    /// does not know the table ignores it. To hand a file to another endpoint (its input queue renamed),
    /// delete the row with the endpoint stopped: `DELETE FROM store_owner`.
    public func claim(forEndpoint endpoint: String) throws -> String? {
        try transaction { store in
            try store.connection.execute("CREATE TABLE IF NOT EXISTS store_owner (endpoint TEXT NOT NULL)")
            if let owner = try store.connection.query("SELECT endpoint FROM store_owner LIMIT 1").first?[0].textValue {
                return owner == endpoint ? nil : owner
            }
            _ = try store.connection.run("INSERT INTO store_owner (endpoint) VALUES (?)", [.text(endpoint)])
            return nil
        }
    }

    /// The endpoint recorded by `claim(forEndpoint:)`, nil when none is (a file from before the record).
    /// Only reads: a tool that looks at the file must not claim it.
    public func owner() throws -> String? {
        let table = try connection.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_owner'")
        guard !table.isEmpty else { return nil }
        return try connection.query("SELECT endpoint FROM store_owner LIMIT 1").first?[0].textValue
    }
}
