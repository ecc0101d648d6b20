// The latency runs of one bench as one figure: the median p50 and p99 of the runs (each run's own
// percentiles are over its messages), the largest max, and what was sent and received in all of them.
struct LatencyRounds {
    let rounds: [LatencyResult]

    /// Nil without runs.
    init?(_ rounds: [LatencyResult]) {
        guard !rounds.isEmpty else { return nil }
        self.rounds = rounds
    }

    var rate: Double { rounds[0].rate }
    var sent: Int { rounds.reduce(0) { $0 + $1.sent } }
    var received: Int { rounds.reduce(0) { $0 + $1.received } }
    /// Every run received every message it sent (a lost message fails the target whatever the p99).
    var allReceived: Bool { rounds.allSatisfy { $0.received == $0.sent } }
    var p50: Double { Stats.median(rounds.map(\.p50)) }
    var p99: Double { Stats.median(rounds.map(\.p99)) }
    var max: Double { rounds.map(\.max).max() ?? 0 }

    /// The run whose p99 is the median (the lower middle one for an even count): its batch and commit
    /// figures stand for the runs.
    var medianRun: LatencyResult {
        let sorted = rounds.sorted { $0.p99 < $1.p99 }
        return sorted[(sorted.count - 1) / 2]
    }
}
