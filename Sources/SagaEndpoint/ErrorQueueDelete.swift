/// What `ErrorQueueAdmin.delete(messageId:)` did.
public struct ErrorQueueDeletion: Sendable, Equatable {
    public var messageId: String
    /// The error queue it was deleted from.
    public var queue: String
    /// Copies with that id removed from the queue, each acknowledgement taken by the broker before the
    /// pass went on. 0: none of the messages in the queue has that id.
    public var deleted: Int
    /// Consumers the queue had when the pass started. Copies they hold unacknowledged were neither seen nor
    /// deleted; they come back to the queue later.
    public var otherConsumers = 0
    /// Messages the queue counted when the pass started that never reached it (another consumer took or
    /// holds them, or the broker sent nothing for the idle time): another copy may be among them.
    public var unseen = 0

    public init(messageId: String, queue: String, deleted: Int, otherConsumers: Int = 0, unseen: Int = 0) {
        self.messageId = messageId
        self.queue = queue
        self.deleted = deleted
        self.otherConsumers = otherConsumers
        self.unseen = unseen
    }
}

extension ErrorQueueAdmin {
    /// Deletes every message with `messageId` from the queue and leaves the others where they were: one
    /// pass over the messages the queue holds now, as `replay` makes, which hands back everything else.
    ///
    /// Every copy, unlike `replay`, which stops at the first: two copies under one id are one message
    /// error-queued twice (a copy is at least once), and the endpoint's inbox takes them for one. A second
    /// copy left behind would be replayed by the next `replayAll`, the very message the operator discarded.
    ///
    /// A deletion counts only once the broker has taken its acknowledgement (`AMQPConnection.ackConfirmed`):
    /// a plain ack lost with the connection would put the message back while this reported it gone.
    ///
    /// Returns `deleted` 0 when none of the messages has that id. Throws `ErrorQueueScanIncomplete` when it
    /// deleted none and could not look at all of them (or other consumers may hold one), as `show` does;
    /// `ErrorQueueDeleteInterrupted` when the pass failed after it deleted some; else the pass's own error
    /// (`ErrorQueueScanInterrupted`, `ErrorQueuePassTooLong`, the connection's), having deleted nothing.
    public func delete(messageId: String) async throws -> ErrorQueueDeletion {
        let scan = scan()
        var deleted = 0
        let outcome: ErrorQueueScan.Outcome
        do {
            outcome = try await scan.run(removed: { _ in deleted += 1 }) { delivery in
                delivery.properties.messageId == messageId ? .delete : .keep
            }
        } catch {
            guard deleted > 0 else { throw error }
            throw ErrorQueueDeleteInterrupted(messageId: messageId, queue: errorQueue, deleted: deleted,
                                              cause: error)
        }
        let unseen = max(outcome.bound - outcome.visited, 0)
        if deleted == 0, unseen > 0 || outcome.otherConsumers > 0 {
            throw ErrorQueueScanIncomplete(queue: errorQueue, messageId: messageId, scanned: outcome.visited,
                                           queued: outcome.queued, idle: scan.idle,
                                           otherConsumers: outcome.otherConsumers)
        }
        return ErrorQueueDeletion(messageId: messageId, queue: errorQueue, deleted: deleted,
                                  otherConsumers: outcome.otherConsumers, unseen: unseen)
    }
}
