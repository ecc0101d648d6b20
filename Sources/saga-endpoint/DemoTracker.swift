import Foundation
import MoneyTransfer

/// Follows the demo's transfers from publish to terminal event, and sums up.
actor DemoTracker {
    private struct Transfer {
        var planned: PlannedTransfer
        var publishedAt: ContinuousClock.Instant?
        var terminalEvents = 0
        var latency: Duration?
        var outcomeOK = true
    }

    private var transfers: [String: Transfer] = [:]
    private var batches: [String: (size: Int, expectedFailed: Int, completions: Int, countsOK: Bool)] = [:]
    private(set) var startedAt: ContinuousClock.Instant?
    private var lastTerminalAt: ContinuousClock.Instant?
    private var ended = 0, completed = 0, failed = 0, refunded = 0, stalled = 0, fees = 0
    private var extraTerminalEvents = 0, payoutsCompleted = 0, extraPayoutEvents = 0, payoutFees = 0
    private var unexpected: [String] = []
    /// Why publishing stopped, if it failed.
    private(set) var publishFailure: String?

    func publishingFailed(_ reason: String) { publishFailure = reason }

    init(_ workload: DemoWorkload) {
        var transfers: [String: Transfer] = [:]
        for planned in workload.transfers { transfers[planned.transferId] = Transfer(planned: planned) }
        for (batchId, ids) in workload.batches {
            let failedCount = ids.filter { transfers[$0]?.planned.expected != .completed }.count
            batches[batchId] = (ids.count, failedCount, 0, true)
        }
        self.transfers = transfers
    }

    /// The transfers `ids` were just published (only the first publish counts, for latency).
    func published(_ ids: [String], at instant: ContinuousClock.Instant) {
        if startedAt == nil { startedAt = instant }
        for id in ids where transfers[id]?.publishedAt == nil { transfers[id]?.publishedAt = instant }
    }

    /// Records an event; events of other runs (unknown ids) are ignored.
    func record(_ event: Wire.Event, at instant: ContinuousClock.Instant) {
        switch event {
        case .transferCompleted(let e):
            terminal(e.transferId, at: instant, ok: { $0.expected == .completed }) {
                completed += 1
                fees += e.fees
            }
        case .transferFailed(let e):
            terminal(e.transferId, at: instant, ok: { planned in
                switch planned.expected {
                case .completed: false
                case .debitRejected: e.reason == BankSimulator.insufficientFunds && e.refunded == 0
                case .refunded: e.reason == BankSimulator.accountClosed && e.refunded == planned.amount
                }
            }) {
                failed += 1
                if e.refunded > 0 { refunded += 1 }
                fees += e.feesLost
            }
        case .transferStalled(let e):
            if transfers[e.transferId] != nil { stalled += 1 }
        case .payoutCompleted(let e):
            guard var batch = batches[e.batchId] else { return }
            batch.completions += 1
            if batch.completions == 1 {
                payoutsCompleted += 1
                payoutFees += e.fees
                batch.countsOK = e.completed + e.failed == batch.size && e.failed == batch.expectedFailed
                if !batch.countsOK {
                    unexpected.append("payout \(e.batchId): completed \(e.completed) failed \(e.failed), expected "
                        + "\(batch.size - batch.expectedFailed)/\(batch.expectedFailed)")
                }
            } else {
                extraPayoutEvents += 1
            }
            batches[e.batchId] = batch
        }
    }

    private func terminal(_ id: String, at instant: ContinuousClock.Instant, ok: (PlannedTransfer) -> Bool, count: () -> Void) {
        guard var transfer = transfers[id] else { return }
        transfer.terminalEvents += 1
        if transfer.terminalEvents == 1 {
            ended += 1
            count()
            lastTerminalAt = instant
            transfer.latency = transfer.publishedAt.map { instant - $0 }
            transfer.outcomeOK = ok(transfer.planned)
            if !transfer.outcomeOK { unexpected.append("transfer \(id): expected \(transfer.planned.expected.rawValue)") }
        } else {
            extraTerminalEvents += 1
        }
        transfers[id] = transfer
    }

    /// Every transfer has its terminal event and every batch its PayoutCompleted.
    var isDone: Bool { ended == transfers.count && payoutsCompleted == batches.count }

    struct Progress: Sendable {
        var ended: Int, total: Int, payouts: Int, batches: Int, stalled: Int
        /// When the first request went out and the last transfer ended: the rate counts between them once
        /// every transfer ended, as the summary's throughput does.
        var startedAt: ContinuousClock.Instant?
        var lastTerminalAt: ContinuousClock.Instant? = nil
    }

    var progress: Progress {
        Progress(ended: ended, total: transfers.count, payouts: payoutsCompleted, batches: batches.count, stalled: stalled,
                 startedAt: startedAt, lastTerminalAt: lastTerminalAt)
    }

    /// The final figures.
    func summary(duplicates: Int, singles: Int) -> DemoSummary {
        let latencies = transfers.values.compactMap(\.latency).sorted()
        func percentile(_ p: Double) -> Duration? {
            guard !latencies.isEmpty else { return nil }
            let rank = Int((p * Double(latencies.count)).rounded(.up)) - 1
            return latencies[min(latencies.count - 1, max(0, rank))]
        }
        var elapsed: Duration?
        if let startedAt, let lastTerminalAt { elapsed = lastTerminalAt - startedAt }
        let missing = transfers.values.filter { $0.terminalEvents == 0 }.map(\.planned.transferId).sorted()
        let repeated = transfers.values.filter { $0.terminalEvents > 1 }.map(\.planned.transferId).sorted()
        return DemoSummary(
            requested: transfers.count, singles: singles, batches: batches.count, ended: ended, completed: completed,
            failed: failed, refunded: refunded, stalledEvents: stalled, payoutsCompleted: payoutsCompleted,
            fees: fees, payoutFees: payoutFees, elapsed: elapsed, p50: percentile(0.5), p99: percentile(0.99),
            duplicatesInjected: duplicates, missing: missing, repeated: repeated,
            extraPayoutEvents: extraPayoutEvents, unexpected: unexpected)
    }
}

/// What the demo prints at the end.
struct DemoSummary: Sendable {
    var requested: Int, singles: Int, batches: Int, ended: Int, completed: Int, failed: Int, refunded: Int
    var stalledEvents: Int, payoutsCompleted: Int, fees: Int, payoutFees: Int
    var elapsed: Duration?, p50: Duration?, p99: Duration?
    var duplicatesInjected: Int
    var missing: [String], repeated: [String]
    var extraPayoutEvents: Int
    var unexpected: [String]

    /// Every transfer (and payout) ended exactly once.
    var exactlyOnce: Bool { missing.isEmpty && repeated.isEmpty && extraPayoutEvents == 0 && payoutsCompleted == batches }
    var succeeded: Bool { exactlyOnce && unexpected.isEmpty }

    var throughput: Double? {
        guard let elapsed, elapsed > .zero else { return nil }
        return Double(ended) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    func table(target: String) -> String {
        func ms(_ d: Duration?) -> String {
            guard let d else { return "-" }
            return String(format: "%.0f ms", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
        }
        let batchTransfers = requested - singles
        let rows: [(String, String)] = [
            ("transfers requested", "\(requested) (\(singles) single + \(batchTransfers) in \(batches) payout batches)"),
            ("completed", "\(completed)"),
            ("failed", "\(failed)"),
            ("  of which refunded", "\(refunded)"),
            ("no terminal event", "\(missing.count)"),
            ("stalled events", "\(stalledEvents)"),
            ("payouts completed", "\(payoutsCompleted)/\(batches)"),
            ("total fees", "\(fees) (payout batches: \(payoutFees))"),
            ("throughput", throughput.map { String(format: "%.1f transfers/s", $0) } ?? "-"),
            ("latency p50", ms(p50)),
            ("latency p99", ms(p99)),
            ("duplicates injected", "\(duplicatesInjected)"),
            ("unexpected outcomes", "\(unexpected.count)"),
            ("ended exactly once", exactlyOnce ? "yes" : "NO"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        var lines = ["saga-endpoint demo on \(target)"]
        lines += rows.map { "  " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
        func sample(_ title: String, _ items: [String]) {
            guard !items.isEmpty else { return }
            lines.append("\(title) (\(items.count)): " + items.prefix(10).joined(separator: ", ") + (items.count > 10 ? ", …" : ""))
        }
        sample("without terminal event", missing)
        sample("with more than one terminal event", repeated)
        sample("unexpected", unexpected)
        return lines.joined(separator: "\n")
    }
}
