// Medians and formatting for the benchmark report.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The results of one case over all rounds.
struct CaseResults {
    let name: String
    var rates: [Double] = []
    /// Rates in the case's second unit (e.g. transfers/s), when it has one.
    var unitRates: [Double] = []
    var unitName: String?
    /// VmRSS after each run of the case.
    var residentAfter: [Int] = []

    var median: Double { Stats.median(rates) }
    var unitMedian: Double { Stats.median(unitRates) }
}

enum Stats {
    /// The median (the mean of the middle two for an even count); 0 for no values.
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Messages per second for `messages` handled in `elapsed`.
    static func rate(messages: Int, elapsed: Duration) -> Double {
        let seconds = seconds(elapsed)
        return seconds > 0 ? Double(messages) / seconds : 0
    }

    /// The CPU time (user + system) this process has used so far, in seconds: the client's cost, which on a
    /// small machine shared with the broker is taken from the broker.
    static func processCPUTime() -> (user: Double, system: Double) {
        var usage = rusage()
        #if canImport(Glibc)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return (seconds(usage.ru_utime), seconds(usage.ru_stime))
    }

    /// ", broker CPU/msg 41.0 µs" when the broker runs on this machine (it shares the cores with the
    /// endpoint, so its cost per message is part of why one case is slower than another), else "".
    static func brokerCPUNote(before: Double?, after: Double?, messages: Int) -> String {
        guard let before, let after, messages > 0 else { return "" }
        return String(format: ", broker CPU/msg %.1f µs", (after - before) * 1e6 / Double(messages))
    }

    /// CPU seconds (user + system) of the broker's Erlang VM (every `beam*` process on the machine, so
    /// other nodes running meanwhile count too), if one runs here.
    static func brokerCPUTime() -> Double? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        var total = 0.0
        var found = false
        for entry in entries where entry.allSatisfy(\.isNumber) {
            guard let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
                  comm.hasPrefix("beam"),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            total += (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            found = true
        }
        return found ? total : nil
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// `12345.6` as `12,346`.
    static func format(_ rate: Double) -> String {
        let digits = String(Int(rate.rounded()))
        var grouped = ""
        for (index, character) in digits.reversed().enumerated() {
            if index > 0, index % 3 == 0 { grouped.append(",") }
            grouped.append(character)
        }
        return String(grouped.reversed())
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func padLeft(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}

extension Stats {
    /// The `fraction` quantile (0.5 = median, 0.99 = p99) of `values`, nearest-rank; 0 for no values.
    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
}

/// Prints a progress line and flushes it at once: into a file or a pipe (`make bench | tee`) stdout is
/// block-buffered, and the soak's progress should show as it happens. (`fflush(nil)` flushes every
/// stream without touching the global `stdout`, which strict concurrency rejects.)
func say(_ line: String) {
    print(line)
    fflush(nil)
}
