public import AMQPTransport

/// A search of an error queue by message id that could not see every message the queue held when it
/// started, so it does not claim the message is absent. Either fewer messages arrived than the passive
/// declare counted (another consumer took or holds some, or the broker sent nothing for the idle time), or
/// the queue had other consumers when the search started: messages they hold unacknowledged are not
/// counted as ready and never reach the search. The message was not among those seen, but it may be
/// among the others.
public struct ErrorQueueScanIncomplete: Error, Sendable, Equatable, CustomStringConvertible {
    public var queue: String
    public var messageId: String
    /// Messages looked at.
    public var scanned: Int
    /// Messages ready in the queue when the search started.
    public var queued: Int
    /// How long the search waited for the next message before it gave up.
    public var idle: Duration
    /// Consumers the queue had when the search started (before the search's own).
    public var otherConsumers: Int = 0

    public var description: String {
        let consumers = otherConsumers == 1 ? "1 other consumer was" : "\(otherConsumers) other consumers were"
        guard scanned < queued else {
            return "message \(messageId) is not among the \(queued) ready message(s) \(queue) held when the search "
                + "started, but \(consumers) attached to \(queue) then and may hold it unacknowledged (held "
                + "messages are neither counted nor delivered to a search): try again once "
                + (otherConsumers == 1 ? "it is" : "they are") + " stopped"
        }
        var text = "message \(messageId) is not among the first \(scanned) of the \(queued) messages \(queue) held when "
            + "the search started; the other \(queued - scanned) did not arrive within \(idle) (another consumer may "
            + "have taken or be holding them), so it may still be there: try again"
        if otherConsumers > 0 {
            text += " once the \(otherConsumers) other consumer(s) attached to \(queue) when the search started are stopped"
        }
        return text
    }
}

/// A pass over an error queue (`list`, `replay --all`, or a search that did not find its message) that lost
/// a channel it held messages on: the connection dropped and recovered, or the broker closed the channel.
/// Those messages went back to the queue and came round again, so the pass may have seen some twice and
/// others not at all. Nothing is lost (what it replayed was confirmed first); trying again is safe.
public struct ErrorQueueScanInterrupted: Error, Sendable, Equatable, CustomStringConvertible {
    public var queue: String
    /// Messages looked at, some possibly twice.
    public var visited: Int
    /// Messages ready in the queue when the pass started.
    public var queued: Int
    /// The refused hand-back of messages on a lost channel; with the broker's reply code and reason when
    /// the broker closed that channel itself.
    public var cause: AMQPError? = nil

    /// The broker took the held messages back because they stayed unacknowledged longer than its
    /// consumer_timeout (RabbitMQ closes the channel with 406 "delivery acknowledgement on channel N timed
    /// out"). Trying again fails the same way unless the pass is shorter or the timeout longer.
    public var brokerConsumerTimeout: Bool {
        guard let cause, cause.replyCode == 406 else { return false }
        return cause.message.contains("acknowledgement") && cause.message.contains("timed out")
    }

    public var description: String {
        let start = "the pass over the \(queued) message(s) \(queue) held was cut short after \(visited): "
        let end = ", so it may have seen some twice and missed others; nothing was lost"
        if brokerConsumerTimeout, let cause {
            return start + "the broker took back the messages the pass held in \(queue), which a pass holds until it "
                + "ends, because it held them longer than the broker's consumer_timeout (\(cause.message))" + end
                + ": a pass that takes as long fails again, so raise consumer_timeout on the broker above its "
                + "duration (rabbitmq.conf; RabbitMQ 3.11.15 and later also take a consumer-timeout policy on \(queue)), "
                + "then try again"
        }
        if let cause, cause.replyCode != nil {
            return start + "the broker closed a channel the pass held messages on (\(cause.message)) and they went "
                + "back to \(queue)" + end + ": try again"
        }
        return start + "the connection or a channel was lost and the messages the pass held went back to \(queue)"
            + end + ": try again"
    }
}

/// A pass over an error queue (`list`, `show`, `replay`, `replay --all`) that could hold no more messages.
/// A pass keeps every message it leaves in the queue unacknowledged until it ends, so that it sees none
/// twice, up to one window (1,000) per consumer channel, and a connection may open no more channels than
/// the broker's `channel_max` (2047 by default, so about 2 million kept messages). When the next window
/// finds no channel left, the pass stops: it hands back what it held and throws this instead of the
/// transport's bare `.channelLimit`. Nothing is lost: the messages it kept are back in the queue, and the
/// ones it removed (replayed) were confirmed by their original queue first.
public struct ErrorQueuePassTooLong: Error, Sendable, Equatable, CustomStringConvertible {
    public var queue: String
    /// Messages looked at before the pass stopped.
    public var visited: Int
    /// Messages ready in the queue when the pass started.
    public var queued: Int
    /// Messages the pass removed (replayed) before it stopped.
    public var removed: Int
    /// The transport's refusal of another consumer channel, naming the negotiated channel_max.
    public var channelLimit: AMQPError

    public var description: String {
        var text = "the pass over the \(queued) message(s) \(queue) held stopped after looking at the first \(visited): "
            + "it held the \(visited - removed) it leaves in \(queue) unacknowledged, a window of them per channel, and the "
            + "connection could open no more channels (\(channelLimit.message)); nothing was lost, they are back in \(queue)"
        if removed > 0 { text += ", and the \(removed) it replayed were confirmed first" }
        return text + ". `errors list --limit \(visited)` lists that many; to get further, raise the broker's "
            + "channel_max or move the first messages to another queue"
    }
}
