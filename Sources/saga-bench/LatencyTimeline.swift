// What happened during a latency run, in time: each message's arrival and latency, and the endpoint's
// batches (size, commit, publish and confirm, whole batch). The summary reads the long commits off it (in
// a quiet run here, the commits that also checkpoint the WAL stood out: 20–35 ms about every half second
// at 4,000 msg/s, each followed by the run's slowest messages); `--latency-timeline FILE` writes all of it
// as CSV.
import Foundation

struct LatencyTimeline: Sendable {
    /// The schedule's origin: times are given in milliseconds since it.
    var start: ContinuousClock.Instant
    /// Per message: when it arrived at the consumer and its latency in milliseconds.
    var arrivals: [(at: ContinuousClock.Instant, milliseconds: Double)] = []
    var endpoint: [TimelineEvent] = []

    /// Commits longer than this count as stalls in the summary: several times a normal commit of a full
    /// batch here (about 7 ms), and near the p99 target's 20 ms.
    static let stallMilliseconds = 15.0

    /// The commits longer than `stallMilliseconds`: how many, the longest, and the median time between
    /// two of them (a steady period points at something periodic, such as WAL checkpoints).
    var commitStalls: CommitStalls {
        let commits = endpoint.filter { $0.kind == BatchTally.Stage.commit.rawValue }
        let stalls = commits.filter { $0.value > Self.stallMilliseconds }
        let gaps = zip(stalls.dropFirst(), stalls).map { Stats.seconds($0.at - $1.at) * 1000 }
        return CommitStalls(commits: commits.count, count: stalls.count, longest: stalls.map(\.value).max(),
                            medianGap: gaps.isEmpty ? nil : Stats.percentile(gaps, 0.5))
    }

    /// Writes `ms,kind,value` lines: `latency` (at arrival), and the endpoint's `batch_size` and stage
    /// durations (at the moment they were recorded, i.e. the stage's end).
    func write(to path: String) throws {
        func ms(_ instant: ContinuousClock.Instant) -> String {
            String(format: "%.3f", Stats.seconds(instant - start) * 1000)
        }
        var rows: [(ContinuousClock.Instant, String)] = arrivals.map {
            ($0.at, "\(ms($0.at)),latency,\(String(format: "%.3f", $0.milliseconds))")
        }
        rows += endpoint.map { ($0.at, "\(ms($0.at)),\($0.kind),\(String(format: "%.3f", $0.value))") }
        rows.sort { $0.0 < $1.0 }
        let text = "ms,kind,value\n" + rows.map(\.1).joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

struct CommitStalls: Sendable {
    var commits: Int
    var count: Int
    var longest: Double?
    var medianGap: Double?
}
