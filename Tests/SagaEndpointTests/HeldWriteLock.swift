import BrokerTestSupport
import Foundation

/// A write transaction held open on an endpoint's database by another connection (as a `sqlite3` session
/// left in a transaction would), so that the endpoint's batches fail as transient, until `release()` or
/// `atMost` seconds.
struct HeldWriteLock: Sendable {
    fileprivate let released: Flag
    fileprivate let holder: Task<Void, any Error>

    /// Ends the transaction and waits until its connection is closed.
    func release() async throws {
        released.set()
        try await holder.value
    }
}

extension EndpointHarness {
    /// Opens `database` and holds a write transaction on it (see `HeldWriteLock`); give it a moment to take
    /// the lock before sending what should meet it.
    func holdWriteLock(on database: String, atMost seconds: TimeInterval) -> HeldWriteLock {
        let released = Flag()
        let holder = Task {
            try await withStore(database) { store in
                try store.transaction { _ in
                    let deadline = Date().addingTimeInterval(seconds)
                    while !released.isSet, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
                }
            }
        }
        return HeldWriteLock(released: released, holder: holder)
    }
}
