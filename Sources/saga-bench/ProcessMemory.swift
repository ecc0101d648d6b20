// This process's memory from /proc/self/status (Linux): the resident set now (VmRSS) and its peak since the
// start (VmHWM). The in-process endpoints count toward it, so it is the endpoint's footprint plus the bench's.
import Foundation

enum ProcessMemory {
    /// Resident set size now, in bytes (nil where /proc is not available).
    static var residentBytes: Int? { field("VmRSS") }

    /// Peak resident set size since the process started, in bytes.
    static var peakResidentBytes: Int? { field("VmHWM") }

    /// A value of /proc/self/status given in kB, e.g. `VmHWM:	  123456 kB`.
    static func field(_ name: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let digits = line.dropFirst(name.count + 1).split(separator: " ").first { Int($0) != nil }
            return digits.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// `123456789` as `117.7 MiB`; `?` when unknown.
    static func format(_ bytes: Int?) -> String {
        guard let bytes else { return "?" }
        return String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}
