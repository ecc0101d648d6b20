// The closing report: every figure the performance issue asks for, next to its target. The verdicts are
// computed from what this run measured, nothing else; a figure that was not measured says so.
import Foundation

struct Summary {
    let options: Options
    var cases: [CaseResults] = []
    /// The half-load latency runs, in order.
    var latencyRounds: [LatencyResult] = []
    /// After each of them, the same schedule through `TransportForwarder`: the broker's and the client's
    /// share of the latency.
    var floorRounds: [LatencyResult] = []
    var scale: [CaseResults] = []
    var soak: SoakResult?

    // The issue's targets.
    static let endpointRatioTarget = 0.75
    static let latencyP99TargetMs = 20.0
    static let liveSagasRatioTarget = 0.8
    static let residentDriftTarget = 0.10

    func print() {
        Swift.print("")
        Swift.print("== summary: medians over \(options.rounds) rounds, alternating cases, one broker ==")
        if !cases.isEmpty { printThroughput() }
        if !scale.isEmpty { printScale() }
        if let soak { printSoak(soak) }
        Swift.print("peak RSS (VmHWM) \(ProcessMemory.format(ProcessMemory.peakResidentBytes)), RSS now "
            + "\(ProcessMemory.format(ProcessMemory.residentBytes)) (the endpoints run inside this process)")
    }

    private func printThroughput() {
        let raw = cases.first { $0.name == RawCLoop().name }
        let start = cases.first { $0.name == TransferStartLoop().name }
        let flow = cases.first { $0.name == TransferFlowLoop().name }
        for result in cases {
            var line = "  \(Stats.pad(result.name, 36)) \(Stats.padLeft(Stats.format(result.median), 9)) msg/s"
            if let unit = result.unitName { line += " = \(Stats.format(result.unitMedian)) \(unit)/s" }
            if let raw, raw.median > 0, result.name != raw.name {
                line += String(format: "   %.3f of raw", result.median / raw.median)
            }
            line += "   RSS after \(ProcessMemory.format(result.residentAfter.last))"
            Swift.print(line)
        }
        if let raw, let start, raw.median > 0 {
            let ratio = start.median / raw.median
            Swift.print("(b)/(a) transfer saga start / raw rabbitmq-c = \(fixed(ratio, 3))   target ≥ "
                + "\(fixed(Self.endpointRatioTarget, 2)): \(verdict(ratio >= Self.endpointRatioTarget))")
            printRoundRatios(start, over: raw)
        } else {
            Swift.print("(b)/(a): not measured (run both `raw` and `transfer saga start`)")
        }
        if let flow {
            Swift.print("(c) transfer flow + bank: \(Stats.format(flow.unitMedian)) transfers/s, "
                + "\(Stats.format(flow.median)) msg/s (\(TransferFlowLoop.messagesPerTransfer) messages per transfer)")
        }
        if let latency = LatencyRounds(latencyRounds) {
            let passed = latency.allReceived && latency.p99 <= Self.latencyP99TargetMs
            Swift.print("latency of (b) at half load (\(Stats.format(latency.rate)) msg/s, \(latency.rounds.count) runs, "
                + "\(latency.sent) sent, \(latency.received) received): p50 \(fixed(latency.p50, 1)) ms, p99 "
                + "\(fixed(latency.p99, 1)) ms (medians), max \(fixed(latency.max, 1)) ms   target p99 ≤ "
                + "\(fixed(Self.latencyP99TargetMs, 0)) ms: \(verdict(passed))")
            if latency.rounds.count > 1 {
                Swift.print("  per run: p99 " + latency.rounds.map { fixed($0.p99, 1) }.joined(separator: ", ")
                    + " ms; p50 " + latency.rounds.map { fixed($0.p50, 1) }.joined(separator: ", ") + " ms")
            }
            let median = latency.medianRun
            let client = Stats.median(latency.rounds.map(\.clientMicrosPerMessage))
            Swift.print("  the paced client (producer and consumer, one thread) used \(fixed(client, 1)) µs of CPU per message")
            let of = latency.rounds.count > 1 ? " (the run with the median p99)" : ""
            if let batches = median.batches, batches.count > 0 {
                let share = Double(batches.full) / Double(batches.count) * 100
                Swift.print("  the endpoint meanwhile\(of): \(Stats.format(Double(batches.count))) batches of "
                    + "\(fixed(Double(batches.messages) / Double(batches.count), 1)) on average, \(fixed(share, 0))% of them "
                    + "full (\(batches.limit)): mean ms commit \(batches.commitMilliseconds.map { fixed($0, 1) } ?? "-"), "
                    + "batch \(batches.batchMilliseconds.map { fixed($0, 1) } ?? "-")")
            }
            if let stalls = median.commitStalls, stalls.commits > 0 {
                var line = "  commits over \(fixed(LatencyTimeline.stallMilliseconds, 0)) ms\(of): \(stalls.count) of "
                    + "\(Stats.format(Double(stalls.commits)))"
                if let longest = stalls.longest { line += ", the longest \(fixed(longest, 1)) ms" }
                if let gap = stalls.medianGap { line += ", one every \(fixed(gap, 0)) ms at the median" }
                Swift.print(line)
            }
            if let floor = LatencyRounds(floorRounds) {
                Swift.print("  the same schedule without the endpoint (consume → confirmed publish → ack): p50 "
                    + "\(fixed(floor.p50, 1)) ms, p99 \(fixed(floor.p99, 1)) ms (medians), max \(fixed(floor.max, 1)) ms "
                    + "(\(floor.received) of \(floor.sent) received)"
                    + (floor.rounds.count > 1 ? "; per run p99 " + floor.rounds.map { fixed($0.p99, 1) }.joined(separator: ", ") : ""))
            }
        } else {
            Swift.print("latency at half load: not measured (needs case `transfer saga start` and --latency-seconds > 0)")
        }
    }

    private func printScale() {
        for result in scale {
            Swift.print("  \(Stats.pad(result.name, 36)) \(Stats.padLeft(Stats.format(result.median), 9)) msg/s   rates "
                + result.rates.map { Stats.format($0) }.joined(separator: ", "))
        }
        guard scale.count == 2, scale[0].median > 0 else { return }
        let ratio = scale[1].median / scale[0].median
        Swift.print("scale: \(scale[1].name) / empty store = \(fixed(ratio, 3))   target ≥ "
            + "\(fixed(Self.liveSagasRatioTarget, 2)): \(verdict(ratio >= Self.liveSagasRatioTarget))")
        printRoundRatios(scale[1], over: scale[0])
    }

    /// The ratio within each round, where both cases ran back to back: on a shared machine the load drifts
    /// between rounds, so their spread shows how far one run's ratio of medians can be trusted.
    private func printRoundRatios(_ numerator: CaseResults, over denominator: CaseResults) {
        let ratios = zip(numerator.rates, denominator.rates).compactMap { $1 > 0 ? $0 / $1 : nil }
        guard ratios.count > 1 else { return }
        Swift.print("  per round: " + ratios.map { fixed($0, 3) }.joined(separator: ", ")
            + " (median \(fixed(Stats.median(ratios), 3)))")
    }

    private func printSoak(_ soak: SoakResult) {
        let rate = Stats.rate(messages: soak.messages, elapsed: soak.elapsed)
        Swift.print("soak: \(Stats.format(Double(soak.messages))) messages in "
            + String(format: "%.0f s", Stats.seconds(soak.elapsed)) + " (\(Stats.format(rate)) msg/s with publishing), "
            + "\(Stats.format(Double(soak.sagas))) live sagas at the end")
        if let sample = soak.residentAtSample, let end = soak.residentAtEnd, sample > 0 {
            let drift = Double(end) / Double(sample) - 1
            Swift.print("soak RSS: \(ProcessMemory.format(sample)) at \(Stats.format(Double(soak.sampleAt))) messages, "
                + "\(ProcessMemory.format(end)) at \(Stats.format(Double(soak.messages))) = "
                + "\(drift >= 0 ? "+" : "")\(fixed(drift * 100, 1))%   target ±\(fixed(Self.residentDriftTarget * 100, 0))%: "
                + verdict(abs(drift) <= Self.residentDriftTarget))
        } else {
            Swift.print("soak RSS: not measured (/proc/self/status unavailable)")
        }
        let window = SoakRun.deduplicationWindow + SoakRun.housekeepingInterval
        // What bounded means here: about rate × (window + interval) rows, whatever the number processed.
        Swift.print("soak tables: inbox max \(soak.maxInbox) rows (end \(soak.finalInbox)), outbox max \(soak.maxOutbox) "
            + "rows (end \(soak.finalOutbox)) after \(Stats.format(Double(soak.messages))) messages; expected about "
            + "rate × \(window) (deduplication window/outbox retention + housekeeping interval)")
    }

    private func verdict(_ passed: Bool) -> String { passed ? "PASS" : "FAIL" }

    private func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
}
