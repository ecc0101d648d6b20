import AMQPTransport
import Foundation
import MoneyTransfer

/// What a transfer of the demo should end with, given the simulated bank's account rules.
enum ExpectedOutcome: String, Sendable {
    /// TransferCompleted.
    case completed
    /// TransferFailed reason InsufficientFunds, nothing refunded (the source is `poor-…`).
    case debitRejected
    /// TransferFailed reason AccountClosed, the amount refunded (the target is `closed-…`).
    case refunded
}

/// One transfer the demo requests, directly or in a payout batch.
struct PlannedTransfer: Sendable {
    var transferId: String
    var fromAccount: String
    var toAccount: String
    var amount: Int
    var batchId: String?
    var expected: ExpectedOutcome
}

/// The demo's messages, in publishing order, and what each transfer should end with.
struct DemoWorkload: Sendable {
    /// One publish: the request and the transfers it starts (none for an injected duplicate).
    struct Publication: Sendable {
        var request: PublishRequest
        var starts: [String]
        var isDuplicate: Bool
    }

    var runId: String
    var transfers: [PlannedTransfer]
    var batches: [String: [String]]
    var publications: [Publication]
    var duplicates: Int

    /// `singles` TransferRequested and `batchCount` PayoutRequested of `batchSize` transfers each. About 10%
    /// of the transfers go to `closed-…` accounts (credit rejected, refunded) and 10% come from `poor-…`
    /// accounts (debit rejected). `duplicateRate` of the single requests are published a second time, with
    /// the same message id, a little later.
    init(singles: Int, batchCount: Int, batchSize: Int, duplicateRate: Double, seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let runId = "demo-" + String(seed, radix: 16).suffix(8)
        var transfers: [PlannedTransfer] = []
        var batches: [String: [String]] = [:]
        var publications: [Publication] = []

        func plan(_ transferId: String, batchId: String?) -> PlannedTransfer {
            let from = "acct-\(random.next(below: 500))"
            var to = "acct-\(random.next(below: 500))"
            if to == from { to = "acct-\(500 + random.next(below: 500))" }
            var planned = PlannedTransfer(transferId: transferId, fromAccount: from, toAccount: to,
                                          amount: 100 + random.next(below: 99_900), batchId: batchId, expected: .completed)
            switch random.next(below: 10) {
            case 0: planned.toAccount = "closed-\(to)"; planned.expected = .refunded
            case 1: planned.fromAccount = "poor-\(from)"; planned.expected = .debitRejected
            default: break
            }
            return planned
        }

        // Batches are spread evenly among the single transfers.
        let positions = (0..<batchCount).map { ($0 + 1) * singles / (batchCount + 1) }
        var nextBatch = 0
        func emitBatches(upTo index: Int) throws {
            while nextBatch < batchCount, positions[nextBatch] <= index {
                let batchId = "\(runId)-b\(nextBatch)"
                let planned = (0..<batchSize).map { plan("\(batchId)-\($0)", batchId: batchId) }
                transfers += planned
                batches[batchId] = planned.map(\.transferId)
                let request = PayoutRequested(batchId: batchId, transfers: planned.map {
                    .init(transferId: $0.transferId, fromAccount: $0.fromAccount, toAccount: $0.toAccount, amount: $0.amount)
                })
                publications.append(Publication(
                    request: try Wire.command(request, to: MoneyTransferApp.payoutsQueue, correlationId: batchId),
                    starts: planned.map(\.transferId), isDuplicate: false))
                nextBatch += 1
            }
        }
        var singlePositions: [Int] = []
        for index in 0..<singles {
            try emitBatches(upTo: index)
            let planned = plan("\(runId)-t\(index)", batchId: nil)
            transfers.append(planned)
            let request = try Wire.command(
                TransferRequested(transferId: planned.transferId, fromAccount: planned.fromAccount,
                                  toAccount: planned.toAccount, amount: planned.amount),
                to: MoneyTransferApp.transfersQueue, correlationId: planned.transferId)
            singlePositions.append(publications.count)
            publications.append(Publication(request: request, starts: [planned.transferId], isDuplicate: false))
        }
        try emitBatches(upTo: Int.max)

        // Duplicates: the same request (same message id) again, 1 to 50 publications later. Inserting from
        // the back keeps the recorded positions of earlier originals valid.
        let duplicates = min(singles, Int((Double(singles) * duplicateRate).rounded()))
        var chosen = Set<Int>()
        while chosen.count < duplicates { chosen.insert(random.next(below: singles)) }
        for original in chosen.map({ singlePositions[$0] }).sorted(by: >) {
            let position = min(publications.count, original + 1 + random.next(below: 50))
            publications.insert(Publication(request: publications[original].request, starts: [], isDuplicate: true), at: position)
        }

        self.runId = runId
        self.transfers = transfers
        self.batches = batches
        self.publications = publications
        self.duplicates = duplicates
    }
}

/// A small, fast, seedable generator (so `--seed` reproduces a workload).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(max(1, bound)))
    }
}
