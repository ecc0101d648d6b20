import Foundation
import Sagas

/// The stateless handlers of a batch, before its saga handlers and its transaction: skipped for
/// duplicates, and run concurrently (up to `statelessHandlerConcurrency` messages at a time), since they are
/// where an endpoint waits for the outside world (an HTTP API). Run one after another, a handler that
/// waited 200 ms held an endpoint to five messages a second whatever its prefetch.
extension BatchPipeline {
    func runStatelessHandlers(_ entries: inout [Entry], now: Date) async {
        // Only messages still headed for processing: a rejected one (a poison message) must not run.
        let needing = entries.indices.filter { index in
            guard entries[index].item != nil, let incoming = entries[index].incoming else { return false }
            return dispatcher.hasStatelessHandlers(for: incoming)
        }
        guard !needing.isEmpty else { return }
        // A duplicate must not call an integration (an HTTP API) again: skip it, the transaction will
        // recognise it and re-publish what the first processing emitted.
        // A copy whose first copy is still on its way to the inbox (this batch, or the one committing)
        // takes that copy's result (`StatelessResults`). Looked up before the inbox: a first copy whose
        // batch commits while this one asks the inbox is then either found here or in the inbox.
        var toRun: [Int] = []
        for index in needing {
            if let outgoing = statelessResults.outgoing(for: entries[index].incoming!) {
                entries[index].item?.statelessOutgoing = outgoing
            } else {
                toRun.append(index)
            }
        }
        guard !toRun.isEmpty else { return }
        let seen: Set<String>
        do {
            seen = try await store.inboxContains(toRun.map { entries[$0].incoming!.messageId })
        } catch {
            // Unknown whether they were handled before: none of them runs. The error takes the failure
            // path, so a busy, full or corrupt database requeues them (transient) like a failed commit.
            for index in toRun {
                entries[index].handlerError = error
                entries[index].item = nil
            }
            return
        }
        // The first copy of each id runs now, concurrently; later copies in this batch run after it, so
        // that they can take its result (or run themselves, with another body or after it failed).
        var firsts: [Int] = [], copies: [Int] = []
        var ids: Set<String> = []
        for index in toRun where !seen.contains(entries[index].incoming!.messageId) {
            if ids.insert(entries[index].incoming!.messageId).inserted { firsts.append(index) } else { copies.append(index) }
        }
        let runs = firsts.map { StatelessRun(index: $0, incoming: entries[$0].incoming!, tracing: entries[$0].item?.tracing) }
        for outcome in await runConcurrently(runs, now: now) {
            apply(outcome, to: &entries)
        }
        for index in copies {
            let incoming = entries[index].incoming!
            if let outgoing = statelessResults.outgoing(for: incoming) {
                entries[index].item?.statelessOutgoing = outgoing
                continue
            }
            apply(await run(StatelessRun(index: index, incoming: incoming, tracing: entries[index].item?.tracing), now: now),
                  to: &entries)
        }
    }

    /// One message's stateless handlers to run, with what they need from its entry.
    struct StatelessRun: Sendable {
        var index: Int
        var incoming: IncomingMessage
        var tracing: MessageTracing?
    }

    struct StatelessOutcome: Sendable {
        var index: Int
        var incoming: IncomingMessage
        var result: Result<[OutgoingMessage], any Error>
        /// The handler threw because the endpoint's task was cancelled under it (a shutdown past its limit).
        var cutShortByCancellation: Bool
    }

    /// Runs `runs` with at most `statelessHandlerConcurrency` at a time; outcomes in the order of `runs`.
    private func runConcurrently(_ runs: [StatelessRun], now: Date) async -> [StatelessOutcome] {
        let limit = max(1, configuration.statelessHandlerConcurrency)
        guard runs.count > 1, limit > 1 else {
            var outcomes: [StatelessOutcome] = []
            for run in runs { outcomes.append(await self.run(run, now: now)) }
            return outcomes
        }
        return await withTaskGroup(of: (Int, StatelessOutcome).self) { group in
            var next = 0
            func start() {
                let position = next, run = runs[next]
                next += 1
                group.addTask { (position, await self.run(run, now: now)) }
            }
            while next < min(limit, runs.count) { start() }
            var outcomes = [StatelessOutcome?](repeating: nil, count: runs.count)
            for await (position, outcome) in group {
                outcomes[position] = outcome
                if next < runs.count { start() }
            }
            return outcomes.map { $0! }
        }
    }

    private func run(_ run: StatelessRun, now: Date) async -> StatelessOutcome {
        do {
            let outgoing = try await HandlerTiming(timer: metrics.handlerDuration).stateless {
                try await dispatcher.runStatelessHandlers(run.incoming, now: now, tracing: run.tracing)
            }
            return StatelessOutcome(index: run.index, incoming: run.incoming, result: .success(outgoing),
                                    cutShortByCancellation: false)
        } catch {
            // An async handler (an HTTP call) throws when the endpoint's task is cancelled under it.
            return StatelessOutcome(index: run.index, incoming: run.incoming, result: .failure(error),
                                    cutShortByCancellation: Task.isCancelled)
        }
    }

    private func apply(_ outcome: StatelessOutcome, to entries: inout [Entry]) {
        switch outcome.result {
        case .success(let outgoing):
            entries[outcome.index].item?.statelessOutgoing = outgoing
            entries[outcome.index].recordedStatelessResult = statelessResults.record(outgoing, for: outcome.incoming)
        case .failure(let error):
            entries[outcome.index].handlerError = error
            entries[outcome.index].cutShortByCancellation = outcome.cutShortByCancellation
            entries[outcome.index].item = nil
        }
    }
}
