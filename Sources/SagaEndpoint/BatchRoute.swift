import Synchronization

/// Which way a batch goes through the endpoint's loop (`SagaEndpoint.run`).
enum BatchRoute: Equatable {
    /// Handlers and transaction together on the SQLite thread, once the commit before has ended.
    case handlersInTransaction
    /// Handlers first, on the pool (`HandlersAhead`), while the batch before commits; then the transaction.
    case handlersAhead

    /// A full batch means load: its handlers run ahead. So does a batch that is not full while the commit
    /// before it is still running: it would wait for that commit anyway, and its handlers can run
    /// meanwhile. (Under load, batches come short whenever the prefetch window is briefly used up;
    /// sending those the other way stalled the pipeline just when it was behind, and the half-load p99
    /// doubled.) Only a short batch with nothing left to wait for runs its handlers in the transaction,
    /// where a small batch is done soonest. A redelivery settles everything first (see
    /// `BatchPipeline.prepare`).
    static func choose(redelivery: Bool, handlersAheadEnabled: Bool, count: Int, batchSize: Int,
                       previousCommitRunning: Bool) -> BatchRoute {
        guard !redelivery, handlersAheadEnabled else { return .handlersInTransaction }
        return count >= batchSize || previousCommitRunning ? .handlersAhead : .handlersInTransaction
    }
}

/// Raised when a batch's commit has ended, so the loop can tell without waiting for it.
final class CommitFlag: Sendable {
    private let done = Atomic<Bool>(false)

    var isDone: Bool { done.load(ordering: .acquiring) }

    func markDone() { done.store(true, ordering: .releasing) }
}
