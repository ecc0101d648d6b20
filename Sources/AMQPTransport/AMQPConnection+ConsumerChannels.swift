import CRabbitMQ
import Foundation

// Consumer channels: numbers handed out lowest-free within the negotiated channel_max, and closed once a
// cancelled consumer's deliveries are settled. The broker closes the whole connection (530) when a client
// opens more channels than channel_max allows, so a channel per consumer that is never closed (or a
// number that only grows) would, after enough consume/cancel cycles, take every consumer and unconfirmed
// publish of the connection down with it.
extension AMQPConnection {
    /// The lowest channel number that no consumer, active or cancelled, holds (never the control or the
    /// publish channel); `.channelLimit` when all of them up to the negotiated channel_max are taken.
    func freeConsumerChannel(for queue: String) throws -> UInt16 {
        // Before the first connection there is no negotiated limit; a consume then fails as not connected.
        let limit = session?.channelMax ?? UInt16.max
        if limit > Self.publishChannel {
            for channel in (Self.publishChannel + 1)...limit
            where consumers[channel] == nil && cancelledChannels[channel] == nil && openChannels[channel] == nil {
                return channel
            }
        }
        throw AMQPError(
            .channelLimit,
            message: "every channel up to the negotiated channel_max \(limit) is in use (\(consumers.count) consumers, "
                + "\(cancelledChannels.count) cancelled ones with deliveries not yet acknowledged, rejected or nacked)",
            operation: "basic.consume \(queue)")
    }

    /// Records that the delivery `tag` (with `multiple`, every one up to it) on `channel` was acknowledged,
    /// rejected or nacked, and closes the channel of a cancelled consumer once nothing is left to settle.
    func settled(channel: UInt16, tag: UInt64, multiple: Bool) {
        if consumers[channel] != nil {
            consumers[channel]?.unsettled.settle(tag, multiple: multiple)
        } else if cancelledChannels[channel] != nil {
            cancelledChannels[channel]?.settle(tag, multiple: multiple)
            closeChannelIfSettled(channel)
        }
    }

    /// Closes the channel of a cancelled consumer whose deliveries are all settled. Waits (leaving it to
    /// the pump) while rabbitmq-c holds frames it read ahead during a synchronous method: deliveries of
    /// this channel may be among them, and once the number is reused they would pass for deliveries of the
    /// new channel, with tags that mean something else there.
    func closeChannelIfSettled(_ channel: UInt16) {
        guard let unsettled = cancelledChannels[channel], unsettled.isEmpty, let session, session.isOpen else { return }
        if session.hasQueuedFrames || assemblies[channel] != nil {
            channelsToClose.insert(channel)
        } else {
            closeConsumerChannel(channel)
        }
    }

    /// The pump's turn at the channels `closeChannelIfSettled` had to leave open: called once the frames
    /// read ahead are handled.
    func closeSettledChannels() {
        let waiting = channelsToClose
        channelsToClose.removeAll()
        for channel in waiting.sorted() { closeChannelIfSettled(channel) }
    }

    /// Closes a consumer's channel and frees its number. The broker requeues whatever is still
    /// unacknowledged on it; acknowledgements of its deliveries are refused from now on (`.staleDelivery`).
    func closeConsumerChannel(_ channel: UInt16) {
        cancelledChannels.removeValue(forKey: channel)
        channelsToClose.remove(channel)
        assemblies.removeValue(forKey: channel)
        guard openChannels.removeValue(forKey: channel) != nil, let session, session.isOpen else { return }
        do {
            try session.closeChannel(channel)
        } catch let error as AMQPError where error.code == .connectionLost || error.code == .connectionClosed {
            connectionLost(error)
        } catch {
            // The broker closed it at the same time (e.g. a bad acknowledgement): closed either way.
            logger.debug("AMQP channel close failed", metadata: ["amqp.channel": "\(channel)", "error": "\(error)"])
        }
    }
}

/// The deliveries a consumer's channel handed to its reader that are not settled (acknowledged, rejected,
/// nacked, or handed back by this client) yet, so that a cancelled consumer's channel is closed only when
/// its reader can no longer settle anything on it.
///
/// The broker numbers the deliveries of a channel 1, 2, 3, … and, while the consumer is active, every one
/// reaches the reader (after that none does), so the settled ones are "all up to a mark" plus the runs
/// settled out of order above it: O(1) per delivery and per in-order acknowledgement.
///
/// Above the mark, runs of consecutive tags rather than single tags: a delivery a reader keeps
/// unacknowledged for a long time (the endpoint keeps deliveries to process them again, for as long as an
/// error queue refuses their copies) holds the mark below it, and every delivery acknowledged meanwhile
/// was one more entry of a set, for ever: millions of entries after an hour at a thousand messages a second.
/// Acknowledged in order above it, they extend one run.
struct UnsettledDeliveries {
    /// The highest tag handed to the reader.
    private var handedOut: UInt64 = 0
    /// Every tag up to this one is settled.
    private var settledThrough: UInt64 = 0
    /// Runs of tags above `settledThrough + 1` settled out of order: sorted, disjoint, not adjacent.
    private var settledAbove: [ClosedRange<UInt64>] = []

    var isEmpty: Bool { settledThrough >= handedOut }

    /// The highest tag handed to the reader (tests wait for it).
    var highestHandedOut: UInt64 { handedOut }

    /// How many runs of tags settled out of order are kept (what the bookkeeping costs).
    var runsSettledOutOfOrder: Int { settledAbove.count }

    mutating func handOut(_ tag: UInt64) {
        handedOut = max(handedOut, tag)
    }

    /// Settling a tag twice, or one never handed out, changes nothing.
    mutating func settle(_ tag: UInt64, multiple: Bool) {
        guard tag > settledThrough, tag <= handedOut else { return }
        if multiple {
            settledThrough = tag
        } else if tag == settledThrough + 1 {
            settledThrough = tag
        } else {
            insertAbove(tag)
            return
        }
        // Runs now at or below the mark are dropped; one that starts right after it (or straddles it) moves
        // the mark to its end.
        var dropped = 0
        for run in settledAbove {
            guard run.lowerBound <= settledThrough + 1 else { break }
            settledThrough = max(settledThrough, run.upperBound)
            dropped += 1
        }
        if dropped > 0 { settledAbove.removeFirst(dropped) }
    }

    private mutating func insertAbove(_ tag: UInt64) {
        // The first run that starts above `tag` (usually none: acknowledged in order, it extends the last run).
        var next = settledAbove.count
        if let last = settledAbove.last, last.lowerBound > tag {
            var low = 0
            var high = settledAbove.count
            while low < high {
                let middle = (low + high) / 2
                if settledAbove[middle].lowerBound > tag { high = middle } else { low = middle + 1 }
            }
            next = low
        }
        if next > 0, settledAbove[next - 1].contains(tag) { return }
        let joinsBefore = next > 0 && settledAbove[next - 1].upperBound + 1 == tag
        let joinsAfter = next < settledAbove.count && settledAbove[next].lowerBound == tag + 1
        switch (joinsBefore, joinsAfter) {
        case (true, true):
            settledAbove[next - 1] = settledAbove[next - 1].lowerBound...settledAbove[next].upperBound
            settledAbove.remove(at: next)
        case (true, false):
            settledAbove[next - 1] = settledAbove[next - 1].lowerBound...tag
        case (false, true):
            settledAbove[next] = tag...settledAbove[next].upperBound
        case (false, false):
            settledAbove.insert(tag...tag, at: next)
        }
    }
}
