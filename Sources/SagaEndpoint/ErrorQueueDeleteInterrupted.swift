/// `ErrorQueueAdmin.delete(messageId:)` failed after it had deleted some copies of the message: the
/// connection was lost, a channel closed, or the pass could hold no more messages. The copies it counts
/// are gone (the broker took each acknowledgement); the messages it kept went back to the queue. It may
/// not have seen every copy, so running the deletion again is how to be sure: it deletes what is left, or
/// says that there is no message with that id.
public struct ErrorQueueDeleteInterrupted: Error, CustomStringConvertible {
    public var messageId: String
    public var queue: String
    /// Copies deleted before the pass failed, each confirmed.
    public var deleted: Int
    /// Why the pass failed: its error (`ErrorQueueScanInterrupted`, `ErrorQueuePassTooLong`, an `AMQPError`).
    public var cause: any Error

    public init(messageId: String, queue: String, deleted: Int, cause: any Error) {
        self.messageId = messageId
        self.queue = queue
        self.deleted = deleted
        self.cause = cause
    }

    public var description: String {
        "deleted \(deleted) message(s) with id \(messageId) from \(queue), then the pass failed (\(cause)); "
            + "another copy may still be there: delete it again (it says there is no message \(messageId) if none is left)"
    }
}
