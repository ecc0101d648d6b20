import AMQPTransport
import SagaStore
import Synchronization

/// Where work comes from: a delivery from an input queue, or a row of the timeouts table that fell due
/// (a saga timeout or a delayed retry).
enum WorkSource: Sendable {
    case delivery(AMQPDelivery)
    case due(TimeoutRecord)
}

/// A multi-producer, single-consumer queue that hands out everything available at once (up to a limit),
/// which is what group commit needs: one transaction and one confirm round trip for all of it.
final class WorkQueue: Sendable {
    private struct State {
        var items: [WorkSource] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    func push(_ item: WorkSource) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.items.append(item)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Pushes `item` unless `finish` was called: then the batch loop may have drained the queue and ended,
    /// and the item would never be taken. False then.
    func pushUnlessFinished(_ item: WorkSource) -> Bool {
        let (pushed, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.finished else { return (false, nil) }
            state.items.append(item)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return pushed
    }

    /// No more items will come; `next` returns nil once the queue is drained.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits for at least one item and returns up to `limit` of those available; nil when finished and
    /// drained.
    func next(limit: Int) async -> [WorkSource]? {
        while true {
            let taken = state.withLock { state -> [WorkSource]? in
                guard !state.items.isEmpty else { return state.finished ? [] : nil }
                let count = min(limit, state.items.count)
                let batch = Array(state.items.prefix(count))
                state.items.removeFirst(count)
                return batch
            }
            if let taken { return taken.isEmpty ? nil : taken }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if !state.items.isEmpty || state.finished { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    var count: Int { state.withLock { $0.items.count } }
}
