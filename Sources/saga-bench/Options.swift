// The command line (no argument parser: a handful of `--name value` options).
import AMQPTransport
import Foundation

struct Options {
    var messages = 20_000
    var rounds = 3
    var batchSize = 100
    var prefetch: UInt16 = 400
    var bodySize = 100
    var url = ProcessInfo.processInfo.environment["AMQP_URL"].flatMap { $0.isEmpty ? nil : $0 }
        ?? "amqp://guest:guest@127.0.0.1:5672/"
    var only: [String] = []
    var ctl: String?
    var latencySeconds = 10.0
    /// Latency runs at half load, each followed by its floor run; the median p99 is the figure.
    var latencyRounds = 3
    /// A fixed rate for the latency run instead of half the measured one (to compare two builds).
    var latencyRate: Double?
    /// Where to write the endpoint's latency run as CSV (`LatencyTimeline`).
    var latencyTimeline: String?
    /// The endpoints commit with `durableCommits = false` (to show what the per-commit fsync costs).
    var durableCommits = true
    var liveSagas = 1_000_000
    var soakMessages = 1_000_000
    var soakChunk = 50_000
    var help = false

    /// The opt-in suites, selected by these exact `--case` names.
    var scale: Bool { only.contains("scale") }
    var soak: Bool { only.contains("soak") }

    static let usage = """
        usage: saga-bench [--messages N] [--rounds R] [--batch B] [--prefetch P] [--body-size S] [--url URL]
                          [--ctl CMD] [--case NAME] [--latency-seconds S] [--latency-rounds N] [--latency-rate R]
                          [--relaxed-commits] [--latency-timeline FILE] [--live-sagas N]
                          [--soak-messages N] [--soak-chunk N]

          --messages N         messages handled per case and run (default 20000; the transfer flow runs N/5
                               transfers, five messages each)
          --rounds R           rounds; each runs every case once, alternating (default 3)
          --batch B            deliveries published, confirmed and acknowledged together (default 100)
          --prefetch P         unacknowledged deliveries in flight per consumer (default 400)
          --body-size S        body size of the pipe cases' messages in bytes (default 100)
          --url URL            the broker (default: AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/)
          --ctl CMD            runs rabbitmqctl against that broker (e.g. 'scripts/broker.sh ctl'): the bench
                               then works in a vhost of its own, deleted at the end. Without it the
                               money-transfer cases run in the URL's vhost only if `transfers`, `bank` and
                               `transfers.events` do not exist there
          --case NAME          run only the cases whose name contains NAME (repeatable), e.g. --case raw;
                               `--case scale` (1,000,000 live sagas vs an empty store) and `--case soak`
                               (RSS and table sizes over 1,000,000 messages) are opt-in suites
          --latency-seconds S  length of the half-load latency run after the rounds (default 10; 0: none)
          --latency-rounds N   latency runs, each followed by its floor run; p99 is their median (default 3)
          --latency-rate R     run it at R msg/s instead of half of case (b)'s median (to compare builds)
          --latency-timeline FILE
                               write the endpoint's first latency run as CSV (ms since the schedule's start, kind,
                               value): each message's latency at its arrival, each batch's size and its
                               commit, publish+confirm and whole-batch durations at their end
          --relaxed-commits    the endpoints commit without an fsync each (durableCommits = false: safe
                               against a crash of the process, not of the machine), to show that cost
          --live-sagas N       sagas in the store of the scale suite (default 1000000)
          --soak-messages N    messages through the soak (default 1000000), in chunks of --soak-chunk
                               (default 50000)
        """

    /// An argument as an error quotes it: a broker URL typed without `--url`, or after the wrong option,
    /// was printed with its password.
    static func shown(_ argument: String) -> String {
        argument.contains("://") ? AMQPConfiguration.redact(argument) : argument
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var remaining = arguments[...]
        func value(_ name: String) throws -> String {
            guard let value = remaining.popFirst() else { throw BenchmarkError("\(name) needs a value\n\(usage)") }
            return value
        }
        func positive(_ name: String) throws -> Int {
            let text = try value(name)
            guard let number = Int(text), number > 0 else { throw BenchmarkError("\(name) must be a positive integer, not '\(shown(text))'") }
            return number
        }
        while let argument = remaining.popFirst() {
            switch argument {
            case "--messages": options.messages = try positive(argument)
            case "--rounds": options.rounds = try positive(argument)
            case "--batch": options.batchSize = try positive(argument)
            case "--prefetch":
                let prefetch = try positive(argument)
                guard prefetch <= Int(UInt16.max) else { throw BenchmarkError("--prefetch must be at most \(UInt16.max)") }
                options.prefetch = UInt16(prefetch)
            case "--body-size": options.bodySize = try positive(argument)
            case "--url": options.url = try value(argument)
            case "--ctl":
                let ctl = try value(argument)
                options.ctl = ctl.trimmingCharacters(in: .whitespaces).isEmpty ? nil : ctl
            case "--case": options.only.append(try value(argument))
            case "--latency-seconds":
                let text = try value(argument)
                guard let seconds = Double(text), seconds.isFinite, seconds >= 0 else {
                    throw BenchmarkError("--latency-seconds must be a number of seconds, not '\(shown(text))'")
                }
                options.latencySeconds = seconds
            case "--latency-rounds": options.latencyRounds = try positive(argument)
            case "--latency-rate":
                let text = try value(argument)
                guard let rate = Double(text), rate.isFinite, rate > 0 else {
                    throw BenchmarkError("--latency-rate must be a positive number of messages per second, not '\(shown(text))'")
                }
                options.latencyRate = rate
            case "--latency-timeline": options.latencyTimeline = try value(argument)
            case "--relaxed-commits": options.durableCommits = false
            case "--live-sagas": options.liveSagas = try positive(argument)
            case "--soak-messages": options.soakMessages = try positive(argument)
            case "--soak-chunk": options.soakChunk = try positive(argument)
            case "--help", "-h": options.help = true
            default: throw BenchmarkError("unknown argument '\(shown(argument))'\n\(usage)")
            }
        }
        return options
    }
}
