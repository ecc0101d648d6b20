import Foundation
import Sagas

/// Runs a batch's saga handlers before its transaction, on the pool, against states read ahead on the
/// reader connection. Decoding, handling and encoding then no longer hold up the SQLite thread, and they
/// overlap the previous batch's commit. Messages run in batch order, each seeing the states the earlier
/// ones wrote. The transaction keeps a message's result only if every instance it read is unchanged, and
/// otherwise runs its handlers again itself (`StoreWorker`), so the outcome is that of running them there.
struct HandlersAhead: Sendable {
    let dispatcher: MessageDispatcher
    let reader: SagaStateReader
    let timing: HandlerTiming

    /// Sets `speculation` on the items whose sagas ran, and returns the states they wrote. Items parked for
    /// a delayed retry do not run; when the states cannot be read, none does (the transaction runs them).
    /// `after` are the states the batch before wrote, if it ran ahead too and may still be committing:
    /// its instances are taken from there rather than read (the reader would see them as they were before
    /// that commit, and the transaction would then run their handlers again).
    func run(_ items: [WorkItem], after previous: [SagaInstanceKey: StoredSaga?] = [:],
             now: Date) async -> (items: [WorkItem], written: [SagaInstanceKey: StoredSaga?]) {
        var plans: [(index: Int, plan: SagaDispatchPlan)] = []
        var keys = Set<SagaInstanceKey>()
        for (index, item) in items.enumerated() where item.deferral == nil {
            let plan = dispatcher.resolveSagas(item.incoming)
            plans.append((index, plan))
            keys.formUnion(plan.keys)
        }
        guard !plans.isEmpty, let stored = await reader.load(keys.filter { previous[$0] == nil }) else {
            return (items, [:])
        }
        let states = SpeculativeSagaStates(stored: stored, readKeys: keys, inherited: previous)
        var items = items
        for (index, plan) in plans {
            let item = items[index]
            var tracing = item.tracing
            tracing?.aheadOfCommit = true
            items[index].speculation = states.speculate { states in
                try timing.sagas {
                    try dispatcher.dispatchToSagas(plan, incoming: item.incoming, persistence: states, now: now,
                                                   tracing: tracing)
                }
            }
        }
        return (items, states.writtenStates)
    }
}
