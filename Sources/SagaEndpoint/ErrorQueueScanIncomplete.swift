/// A search of an error queue by message id that did not get to every message the queue held when it
/// started (fewer arrived than the passive declare counted: another consumer took or holds some, or the
/// broker sent nothing for the idle time). The message was not among those seen, but it may be among
/// the others, so the search does not claim it is absent.
public struct ErrorQueueScanIncomplete: Error, Sendable, Equatable, CustomStringConvertible {
    public var queue: String
    public var messageId: String
    /// Messages looked at.
    public var scanned: Int
    /// Messages the queue held when the search started.
    public var queued: Int
    /// How long the search waited for the next message before it gave up.
    public var idle: Duration

    public var description: String {
        "message \(messageId) is not among the first \(scanned) of the \(queued) messages \(queue) held when the "
            + "search started; the other \(queued - scanned) did not arrive within \(idle) (another consumer may have "
            + "taken or be holding them), so it may still be there: try again"
    }
}
