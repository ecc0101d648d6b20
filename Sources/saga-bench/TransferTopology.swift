// The reference app's queues and exchange as the money-transfer cases need them, plus a sink queue for the
// terminal events. TransferSaga addresses `transfers`, `bank` and `transfers.events` by these fixed names,
// so the cases run in a vhost of the bench's own (see BenchVhost) where nothing else uses them.
import AMQPTransport
import Foundation
import MoneyTransfer
import Sagas

enum TransferTopology {
    static let transfers = MoneyTransferApp.transfersQueue
    static let bank = MoneyTransferApp.bankQueue
    static let events = MoneyTransferApp.transferEventsExchange
    /// Collects the terminal events (TransferCompleted, TransferFailed) so the flow case can count them.
    static let eventSink = "saga-bench-transfer-events"
    /// Every queue the cases or the endpoints (their error queues) declare.
    static let queues = [transfers, bank, eventSink, transfers + ".error", bank + ".error"]

    /// Declares what the cases need. The queues are not durable, like the pipe cases' queues, so that the
    /// comparison with the raw loop is about the client, not about the broker writing to disk.
    static func declare(_ admin: AMQPConnection) async throws {
        for queue in [transfers, bank, eventSink] {
            try await admin.declareQueue(QueueDeclaration(name: queue, durable: false))
        }
        try await admin.declareExchange(ExchangeDeclaration(name: events, kind: .topic, durable: false))
        for key in [TransferCompleted.messageType, TransferFailed.messageType] {
            try await admin.bind(BindingDeclaration(source: events, destination: eventSink, routingKey: key))
        }
    }

    /// Empties the queues between runs (error queues exist only once an endpoint has started).
    static func purge(_ admin: AMQPConnection) async throws {
        for queue in [transfers, bank, eventSink] { try await admin.purgeQueue(queue) }
    }

    static func delete(_ admin: AMQPConnection) async {
        for queue in queues { _ = try? await admin.deleteQueue(queue) }
        try? await admin.deleteExchange(events)
    }

    /// Whether any of the names is taken in the connection's vhost (then the cases must not touch them).
    static func inUse(_ admin: AMQPConnection) async -> Bool {
        for queue in [transfers, bank] where (try? await admin.checkQueue(queue)) != nil { return true }
        return (try? await admin.checkExchange(events)) != nil
    }

    /// `count` transfer requests between ordinary accounts (the bank accepts every one), with random ids
    /// like real clients would use (random keys into the store's indexes, not appends).
    static func requests(_ count: Int, startingAt first: Int = 0) -> [TransferRequested] {
        (first..<first + count).map { index in
            TransferRequested(transferId: UUID().uuidString.lowercased(), fromAccount: "acct-\(index % 1000)",
                              toAccount: "acct-\((index + 1) % 1000)", amount: 100 + index % 900)
        }
    }

    /// Publishes `requests` to `transfers` as a client would (typed JSON, message id = transfer id), in
    /// confirmed chunks.
    static func publish(_ requests: some Collection<TransferRequested>, on admin: AMQPConnection) async throws {
        var pending = requests[...]
        while !pending.isEmpty {
            let chunk = pending.prefix(1000)
            pending = pending.dropFirst(chunk.count)
            let messages = try chunk.map { PublishRequest.toQueue(transfers, try message($0)) }
            guard await admin.publish(messages).allSatisfy(\.isConfirmed) else {
                throw BenchmarkError("publishing TransferRequested to \(transfers) was not confirmed")
            }
        }
    }

    /// Publishes `count` fresh transfer requests, building them a chunk at a time: the soak's chunks of
    /// 50,000 built at once were a transient ~8 MiB in this process, which glibc did not always return,
    /// so the soak's RSS samples jumped between two levels depending on when they were taken.
    static func publishRequests(_ count: Int, on admin: AMQPConnection) async throws {
        var published = 0
        while published < count {
            let chunk = min(1000, count - published)
            try await publish(requests(chunk, startingAt: published), on: admin)
            published += chunk
        }
    }

    static func message(_ request: TransferRequested) throws -> AMQPMessage {
        AMQPMessage(body: try MessageCoding.encode(request), properties: BasicProperties(
            contentType: MessageCoding.contentType, deliveryMode: .transient, messageId: request.transferId,
            type: TransferRequested.messageType))
    }

    /// How often the endpoint cases ask the broker whether the last message arrived. Each ask is a round
    /// trip the broker and this process pay for while the endpoint runs (the raw loop counts for itself).
    /// Every 2 ms, case (b) measured 2–12% slower in alternating runs (BenchSaga and the transfer flow
    /// within the noise); every 10 ms the asks cost a fifth of that, and the run's end is still known to
    /// 10 ms, a quarter of a percent of a 4 s run.
    static let completionPoll: Duration = .milliseconds(10)

    /// Waits until `queue` holds at least `count` messages; returns when that was seen.
    static func waitFor(_ count: Int, in queue: String, on admin: AMQPConnection, limit: Duration = .seconds(600),
                        poll: Duration = completionPoll) async throws {
        let started = ContinuousClock.now
        while try await admin.checkQueue(queue).messageCount < count {
            if ContinuousClock.now - started > limit {
                let found = try await admin.checkQueue(queue).messageCount
                throw BenchmarkError("\(queue) holds \(found) messages after \(limit), want \(count)")
            }
            try await Task.sleep(for: poll)
        }
    }

    /// Waits until `queue` is empty (the endpoint acked its last deliveries).
    static func waitUntilEmpty(_ queue: String, on admin: AMQPConnection, limit: Duration = .seconds(10)) async throws {
        let started = ContinuousClock.now
        while try await admin.checkQueue(queue).messageCount > 0 {
            guard ContinuousClock.now - started < limit else { throw BenchmarkError("\(queue) not empty after \(limit)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
