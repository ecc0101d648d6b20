import Foundation

/// The deliveries of one consumer, in order, for one reader: `for try await delivery in consumer.deliveries`.
///
/// Unlike a plain `AsyncThrowingStream`, it knows which deliveries its reader has taken. When the reader
/// leaves early (`break`, a thrown error, its task cancelled), the consumer is cancelled and the
/// deliveries it never took go straight back to the queue, instead of staying unacknowledged until the
/// connection closes. The ones it took can still be acknowledged (once: see `AMQPConsumer`).
///
/// The sequence ends normally after `AMQPConsumer.cancel()` (once the deliveries already received are
/// read) or `AMQPConnection.close()`, and with an error when the broker cancels the consumer or the
/// connection is lost without recovery.
public struct AMQPDeliveries: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery

    let buffer: DeliveryBuffer

    public func makeAsyncIterator() -> Iterator {
        Iterator(reader: DeliveryReader(buffer: buffer))
    }

    /// Waiting for a delivery keeps the caller's isolation (`next(isolation:)`): a loop isolated to an
    /// actor (even to the `AMQPConnection` itself, which then needs no thread switch at all for its
    /// publishes and acks) stays on it.
    public struct Iterator: AsyncIteratorProtocol {
        let reader: DeliveryReader

        public mutating func next() async throws -> AMQPDelivery? {
            try await reader.buffer.next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> AMQPDelivery? {
            try await reader.buffer.next(isolation: actor)
        }

        /// The deliveries already received, up to `limit` (at least one: waits for the first); empty
        /// once the sequence has ended. For consumers that work in batches (e.g. acknowledge a batch
        /// with one `ack(_:multiple:)`).
        public mutating func next(upTo limit: Int, isolation actor: isolated (any Actor)? = #isolation)
            async throws -> [AMQPDelivery]
        {
            var batch: [AMQPDelivery] = []
            reader.buffer.takeBuffered(limit, into: &batch)
            if !batch.isEmpty { return batch }
            guard let first = try await reader.buffer.next(isolation: actor) else { return [] }
            batch.append(first)
            reader.buffer.takeBuffered(limit - 1, into: &batch)
            return batch
        }
    }
}

/// Abandons the buffer when the iterator holding it goes away.
final class DeliveryReader: Sendable {
    let buffer: DeliveryBuffer

    init(buffer: DeliveryBuffer) { self.buffer = buffer }

    deinit { buffer.abandon() }
}

/// Deliveries on their way from the connection's pump to the reader.
final class DeliveryBuffer: @unchecked Sendable {
    // `@unchecked Sendable`: every mutable field is guarded by `lock`; continuations are resumed and the
    // abandon callback is called outside it.
    private let lock = NSLock()
    private var items: [AMQPDelivery] = []
    private var head = 0
    private var waiter: CheckedContinuation<AMQPDelivery?, any Error>?
    private var ending: Result<Void, any Error>?
    private var abandoned = false
    /// Called once if the reader leaves before the end, with the deliveries it never took.
    private let onAbandon: @Sendable ([AMQPDelivery]) -> Void

    init(onAbandon: @escaping @Sendable ([AMQPDelivery]) -> Void) {
        self.onAbandon = onAbandon
    }

    /// Nobody will ever read what is left (the consumer ended, usually by `cancel()`, and no iterator was
    /// ever made; an iterator abandons the buffer when it goes): hand it back, or it would stay
    /// unacknowledged and keep the consumer's channel open until the connection closes. While the consumer
    /// is active its record holds the buffer, so this runs only after the end.
    deinit {
        if !abandoned, head < items.count { onAbandon(Array(items[head...])) }
    }

    /// Hands a delivery to the reader; false when nobody will read it (abandoned or ended).
    func yield(_ delivery: AMQPDelivery) -> Bool {
        lock.lock()
        guard !abandoned, ending == nil else {
            lock.unlock()
            return false
        }
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume(returning: delivery)
        } else {
            items.append(delivery)
            lock.unlock()
        }
        return true
    }

    /// Ends the sequence once the reader has taken what is buffered: normally, or with `error`.
    func finish(throwing error: (any Error)? = nil) {
        lock.lock()
        guard ending == nil, !abandoned else {
            lock.unlock()
            return
        }
        ending = error.map { .failure($0) } ?? .success(())
        let waiter = self.waiter
        self.waiter = nil
        if waiter != nil, error != nil { ending = .success(()) }  // the error is reported once
        lock.unlock()
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    func next(isolation actor: isolated (any Actor)?) async throws -> AMQPDelivery? {
        // Already here: no suspension.
        if let delivery = takeBuffered() { return delivery }
        return try await withTaskCancellationHandler(operation: {
            try await withCheckedThrowingContinuation(isolation: actor) { (continuation: CheckedContinuation<AMQPDelivery?, any Error>) in
                lock.lock()
                if head < items.count {
                    let delivery = items[head]
                    head += 1
                    compact()
                    lock.unlock()
                    continuation.resume(returning: delivery)
                } else if let ending {
                    self.ending = .success(())
                    lock.unlock()
                    continuation.resume(with: ending.map { nil })
                } else if abandoned {
                    lock.unlock()
                    continuation.resume(returning: nil)
                } else {
                    waiter = continuation
                    lock.unlock()
                }
            }
        }, onCancel: {
            abandon()
        }, isolation: actor)
    }

    /// The next buffered delivery, if there is one (and the reader has not left).
    private func takeBuffered() -> AMQPDelivery? {
        lock.lock()
        defer { lock.unlock() }
        guard head < items.count, !abandoned else { return nil }
        let delivery = items[head]
        head += 1
        compact()
        return delivery
    }

    /// Appends up to `limit` deliveries already buffered to `batch`, without waiting.
    func takeBuffered(_ limit: Int, into batch: inout [AMQPDelivery]) {
        guard limit > 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        guard head < items.count else { return }
        if batch.isEmpty, head == 0, items.count <= limit {
            // Everything buffered: hand over the whole array instead of copying it.
            swap(&batch, &items)
            return
        }
        let end = min(items.count, head + limit)
        batch.append(contentsOf: items[head..<end])
        head = end
        compact()
    }

    /// Drops the deliveries already taken from the front of `items` (under `lock`). Once they are at least
    /// half of it, whatever their number: a reader slower than the broker never empties the buffer, and
    /// taken deliveries kept here (up to 1,023 of them before) held their bodies long after the reader was
    /// done with them, e.g. hundreds of MiB in an error-queue replay of large messages. Each delivery is
    /// moved at most once per removal of at least as many, so this stays O(1) per delivery.
    private func compact() {
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
    }

    /// The reader is gone: end the sequence for it and hand back what it never took (once).
    func abandon() {
        lock.lock()
        guard !abandoned else {
            lock.unlock()
            return
        }
        abandoned = true
        let unseen = Array(items[head...])
        items.removeAll()
        head = 0
        let waiter = self.waiter
        self.waiter = nil
        let ended = ending != nil
        lock.unlock()
        waiter?.resume(returning: nil)
        // After a normal end (cancel(), close()) the consumer is already gone; what is left unread is
        // still handed back, its channel may be open.
        if !unseen.isEmpty || !ended { onAbandon(unseen) }
    }
}
