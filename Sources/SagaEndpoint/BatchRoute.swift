/// Which way a batch goes through the endpoint's loop (`SagaEndpoint.run`).
enum BatchRoute: Equatable {
    /// Handlers and transaction together on the SQLite thread, once the commit before has ended.
    case handlersInTransaction
    /// Handlers first, on the pool (`HandlersAhead`), while the batch before commits; then the transaction.
    case handlersAhead

    /// Every batch runs its handlers ahead, whatever its size: the SQLite thread, the endpoint's one serial
    /// stage, then only runs statements. (Until 2026-12-07 a short batch with no commit left to wait for
    /// ran its handlers inside its transaction, as quickest for a small batch; at half of case (b)'s rate
    /// that put the JSON coding of most batches on the SQLite thread, and the p99 latency was higher in 7 of
    /// 8 alternating runs, with no gain at 100 or 1,000 msg/s: docs/performance.md.) A redelivery settles
    /// everything first and runs in the transaction (see `BatchPipeline.prepare`), as does every batch when
    /// handlers ahead are turned off.
    static func choose(redelivery: Bool, handlersAheadEnabled: Bool) -> BatchRoute {
        !redelivery && handlersAheadEnabled ? .handlersAhead : .handlersInTransaction
    }
}
