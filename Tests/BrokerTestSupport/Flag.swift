import Synchronization

/// A flag one task raises and another polls (e.g. "the endpoint's run returned"), for `waitUntil`.
public final class Flag: Sendable {
    private let value = Mutex(false)

    public init() {}

    public func set() { value.withLock { $0 = true } }

    public var isSet: Bool { value.withLock { $0 } }
}
