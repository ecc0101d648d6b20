import Foundation
import Sagas
import Synchronization

/// What stateless handlers emitted for messages whose batch has not committed yet, by message id.
///
/// Stateless handlers run before the transaction, and the inbox only knows a message once its batch
/// commits. A second copy of a message (a producer's re-send) in the same batch, or in the next one while
/// this one commits, would otherwise call the integration again. It takes the first copy's outgoing
/// messages instead: their ids derive from the message id, so they are the same messages, and only one
/// copy's transaction keeps them (the other is a duplicate by then). A copy with another body, or after a
/// failed call, runs its handlers itself. Entries are dropped once their batch's transaction has ended.
final class StatelessResults: Sendable {
    private struct Entry {
        var body: Data
        var outgoing: [OutgoingMessage]
    }

    private let entries = Mutex<[String: Entry]>([:])

    /// The outgoing messages of an earlier copy with the same id and body, if its batch is still open.
    func outgoing(for incoming: IncomingMessage) -> [OutgoingMessage]? {
        entries.withLock { entries in
            guard let entry = entries[incoming.messageId], entry.body == incoming.body else { return nil }
            return entry.outgoing
        }
    }

    /// Keeps the first copy's result; false when an entry for the id exists already (a copy with another
    /// body ran its handlers itself: the entry stays the first copy's, and only that batch forgets it).
    @discardableResult
    func record(_ outgoing: [OutgoingMessage], for incoming: IncomingMessage) -> Bool {
        entries.withLock { entries in
            guard entries[incoming.messageId] == nil else { return false }
            entries[incoming.messageId] = Entry(body: incoming.body, outgoing: outgoing)
            return true
        }
    }

    /// Called once a batch's transaction has ended (committed or not) with the message ids it recorded.
    func forget(_ messageIds: [String]) {
        entries.withLock { entries in
            for id in messageIds { entries.removeValue(forKey: id) }
        }
    }

    var count: Int { entries.withLock { $0.count } }
}
