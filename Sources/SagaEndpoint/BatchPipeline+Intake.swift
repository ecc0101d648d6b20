import AMQPTransport
import Foundation
import Logging
import SagaStore
import Sagas

/// The stages before a batch's handlers: counting redeliveries, and turning deliveries and due rows into
/// work items (the stateless handlers: BatchPipeline+Stateless.swift).
extension BatchPipeline {
    /// The batch's entries, translated and with poison messages diverted, and the time it is handled at.
    func intake(_ sources: [WorkSource]) async -> (entries: [Entry], now: Date) {
        let now = Date()
        var entries = await withoutStaleHeldDeliveries(sources).map { Entry(source: $0) }
        translate(&entries)
        await divertPoisonMessages(&entries, now: now)
        return (entries, now)
    }

    /// Held deliveries put back into the intake (`HeldDeliveries`) whose channel was closed or whose
    /// connection was lost since: the broker has requeued them and delivers them again (perhaps in this very
    /// batch), so the held copy is dropped rather than processed a second time. It would also use up the
    /// excuse its round left, and the broker's redelivery would be counted as a possible crash.
    private func withoutStaleHeldDeliveries(_ sources: [WorkSource]) async -> [WorkSource] {
        guard !heldDeliveries.isEmpty else { return sources }
        var kept = sources
        for (index, source) in sources.enumerated().reversed() {
            guard case .delivery(let delivery) = source, heldDeliveries.isHeld(delivery.tag),
                  !(await consumer.canSettle(delivery.tag)) else { continue }
            kept.remove(at: index)
            dropStale(delivery, messageId: delivery.properties.messageId ?? "")
        }
        return kept
    }

    /// A message that kills the process (rather than throwing) comes back redelivered after every restart.
    /// Redeliveries are counted in SQLite before processing, so the count survives the crash; past
    /// `maxDeliveries` the message goes to the error queue instead of crash-looping the endpoint.
    /// Quorum queues too (their `x-delivery-count` is not used, see below). Due rows that were due before
    /// this process started are counted the same way: a poison timeout is due again at every start.
    func divertPoisonMessages(_ entries: inout [Entry], now: Date) async {
        var counted: [Int] = []
        var countedDue: [Int] = []
        var replayed: [String] = []
        let anyHeld = !heldDeliveries.isEmpty
        for index in entries.indices where entries[index].item != nil {
            switch entries[index].source {
            case .delivery(let delivery):
                // Held by this process and put back (`HeldDeliveries`): the same delivery again, not one the
                // broker redelivered. Counted already if it was a redelivery (its count is cleared with
                // it): it keeps that count, so a poison message stays diverted; and not a replay starting
                // afresh again (that reset its attempts at every retry).
                if anyHeld, heldDeliveries.isHeld(delivery.tag) {
                    if delivery.redelivered { entries[index].item?.wasRedelivered = true }
                    entries[index].deliveries = heldDeliveries.deliveries(of: delivery.tag)
                    // The excuse its round left (`TransientRequeues`) is for this delivery: used up.
                    _ = transientRequeues.take(entries[index].incoming!.messageId)
                    continue
                }
                guard delivery.redelivered else {
                    // Replayed from an error queue: its count starts afresh. A poison message's count
                    // outlives its error copy (until housekeeping), so the replay's first redelivery (an
                    // immediate retry, a requeued batch) sent it straight back as a poison message.
                    if delivery.properties.headers?[MessageTranslation.replaysHeader] != nil,
                       let messageId = delivery.properties.messageId, !messageId.isEmpty {
                        replayed.append(messageId)
                    }
                    continue
                }
                entries[index].item?.wasRedelivered = true
                // A requeue for a transient reason is not a delivery that may have crashed the process
                // (`TransientRequeues`): not counted. Counted here on every queue type: a quorum queue's
                // `x-delivery-count` counts every requeue, also those a process excused and forgot when it
                // stopped, and the next process took them all for crashes (a PoisonMessage after a deploy).
                if !transientRequeues.take(entries[index].incoming!.messageId) {
                    counted.append(index)
                }
            case .due(let row):
                // Due before this process started: an earlier one may have died on it (see
                // `mayHaveBeenTried`). Counted under its message id, cleared once it is processed. Its
                // first count is 1, not 2 as for a redelivery: most such rows simply fell due while no
                // endpoint ran, and a count of 2 would make each of them a suspect, processed alone.
                guard mayHaveBeenTried(row) else { continue }
                entries[index].item?.wasRedelivered = true
                // A due row that failed for a transient reason simply stays due: not a crash either.
                if transientRequeues.take(entries[index].incoming!.messageId) { continue }
                countedDue.append(index)
            }
        }
        // Only when there are some: the call waits for the SQLite thread, which is busy with the commit
        // before, and every batch's intake waited for it (handlers no longer ran ahead of that commit).
        if !replayed.isEmpty { await store.startAfresh(replayed) }
        for (indices, first) in [(counted, 2), (countedDue, 1)] where !indices.isEmpty {
            let counts = await store.countDeliveries(indices.map { entries[$0].incoming!.messageId }, now: now,
                                                     first: first)
            for index in indices { entries[index].deliveries = counts[entries[index].incoming!.messageId] }
        }
        for index in entries.indices {
            guard let deliveries = entries[index].deliveries, deliveries > configuration.maxDeliveries else { continue }
            entries[index].rejection = RejectionReason(
                kind: "PoisonMessage",
                detail: "delivered \(deliveries) times without its processing completing (the process may be crashing on it)")
            entries[index].item = nil
            entries[index].poison = true
        }
    }

    func translate(_ entries: inout [Entry]) {
        for index in entries.indices {
            switch entries[index].source {
            case .delivery(let delivery):
                metrics.received.increment()
                do {
                    let incoming = try MessageTranslation.incoming(
                        delivery, maxBodyBytes: configuration.maxBodyBytes, registry: dispatcher.registry)
                    entries[index].incoming = incoming
                    entries[index].item = WorkItem(incoming: incoming)
                } catch {
                    entries[index].rejection = error
                }
            case .due(let row):
                let incoming = MessageTranslation.incoming(row)
                entries[index].incoming = incoming
                if let rejection = MessageTranslation.unhandledDueRow(incoming, registry: dispatcher.registry) {
                    entries[index].rejection = rejection
                } else {
                    entries[index].item = WorkItem(incoming: incoming, timeoutRow: row.key)
                }
            }
            tracing?.start(&entries[index])
        }
    }
}
