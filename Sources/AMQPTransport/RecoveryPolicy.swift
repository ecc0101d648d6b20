/// How a lost connection is re-established: exponential backoff with jitter, forever, until `close()`.
public struct RecoveryPolicy: Sendable, Hashable {
    public var isEnabled: Bool
    public var initialDelay: Duration
    public var maximumDelay: Duration
    public var multiplier: Double
    /// A fraction (0…1) of each delay added or removed at random, so many clients do not reconnect in
    /// lockstep after a broker restart.
    public var jitter: Double

    public init(isEnabled: Bool = true, initialDelay: Duration = .milliseconds(100),
                maximumDelay: Duration = .seconds(5), multiplier: Double = 2, jitter: Double = 0.2) {
        self.isEnabled = isEnabled
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.jitter = jitter
    }

    public static let `default` = RecoveryPolicy()
    public static let disabled = RecoveryPolicy(isEnabled: false)

    /// The delay before reconnection attempt `attempt` (0-based).
    public func delay(attempt: Int) -> Duration {
        let base = initialDelay.seconds * pow(multiplier, Double(min(attempt, 30)))
        let capped = min(base, maximumDelay.seconds)
        let spread = capped * jitter
        return .milliseconds(Int(max(0, capped + Double.random(in: -spread...spread)) * 1000))
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
