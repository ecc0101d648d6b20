// Outgoing commands and replies the broker returns (no queue of that name): a requester gone with its reply
// queue, a queue not declared. They are safe in the outbox, so they no longer hold their incoming delivery;
// returned for longer than `unroutableTimeout`, they go to the error queue, replayable to their queue.
import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaStore
import Sagas
import Testing
@testable import SagaEndpoint

@Suite("Unroutable outgoing messages", .timeLimit(.minutes(6)))
struct UnroutableOutgoingTests {
    // Failed before (a review helper's hostile-input run): each such delivery was held and handed back to the
    // head of its queue for ever, so with more of them than `prefetch` nothing behind them was delivered
    // (800 bank commands with a reply_to of a missing queue: 5 good ones after them never answered).
    @Test("replies to a missing queue neither starve the queue nor stay in the outbox for ever")
    func unroutableRepliesDoNotStarveTheQueue() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("pings")
        try await harness.connection.declareQueue(QueueDeclaration(name: "pongs"))
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { ping, context in try context.reply(Explode(note: "pong " + ping.note)) }
        let endpoint = harness.startEndpoint(registry, queues: ["pings"], database: "pings") {
            $0.prefetch = 8
            $0.batchSize = 2
            $0.outboxRedispatchDelay = .milliseconds(300)
            $0.unroutableTimeout = .seconds(2)
        }
        for index in 0..<20 {
            try await harness.send(Explode(note: "bad \(index)"), to: "pings", messageId: "bad-\(index)",
                                   replyTo: "gone-requester")
        }
        try await harness.send(Explode(note: "good"), to: "pings", replyTo: "pongs")
        let pongs = try await harness.receive(from: "pongs", count: 1, timeout: .seconds(30))
        #expect(pongs.count == 1, "the good message was not processed within 30 s")

        // After `unroutableTimeout` the replies are in the endpoint's error queue, addressed to their queue.
        let copies = try await harness.errorMessages(of: "pings", count: 20, timeout: .seconds(60))
        #expect(copies.count == 20)
        for copy in copies {
            #expect(copy.header("x-error-type") == "UnroutableMessage")
            #expect(copy.header("x-original-queue") == "gone-requester")
            #expect(copy.header("x-error-reason")?.contains("no queue 'gone-requester'") == true,
                    "\(copy.header("x-error-reason") ?? "")")
            #expect(copy.properties.type == Explode.messageType)
        }
        await harness.stop(endpoint)
        #expect(try await harness.depth("pings") == 0, "every delivery was acknowledged")
        let backlog = try await harness.withStore("pings") { try $0.outboxBacklog() }
        #expect(backlog == 0, "the moved replies count as dispatched")
        await harness.tearDown()
    }

    @Test("a reply moved to the error queue is replayed to its queue once the queue exists")
    func movedReplyReplays() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("pings")
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { ping, context in try context.reply(Explode(note: "pong " + ping.note)) }
        let endpoint = harness.startEndpoint(registry, queues: ["pings"], database: "pings") {
            $0.outboxRedispatchDelay = .milliseconds(300)
            $0.unroutableTimeout = .seconds(1)
        }
        try await harness.send(Explode(note: "late"), to: "pings", messageId: "late-1", replyTo: "late-requester")
        let copies = try await harness.errorMessages(of: "pings", count: 1, timeout: .seconds(60))
        let replyId = try #require(copies.first?.properties.messageId)
        await harness.stop(endpoint)

        // `errorMessages` took the copy off the queue; put it back as the endpoint left it, then replay it.
        try await harness.connection.publish(.toQueue("pings.error", copies[0].message))
        try await harness.connection.declareQueue(QueueDeclaration(name: "late-requester"))
        let admin = ErrorQueueAdmin(connection: harness.connection, errorQueue: "pings.error")
        #expect(try await admin.replay(messageId: replyId))
        let replies = try await harness.receive(from: "late-requester", count: 1, timeout: .seconds(20))
        #expect(replies.map(\.properties.messageId) == [replyId], "the reply under its own id")
        #expect(replies.first?.properties.type == Explode.messageType)
        await harness.tearDown()
    }

    // Failed before: housekeeping re-sent the 500 oldest unconfirmed rows at every pass, from the start, so
    // behind 500 rows that kept failing no other row was ever sent again.
    @Test("housekeeping goes round the unconfirmed rows in passes")
    func claimsGoRound() async throws {
        let fixture = try await StoreWorkerFixture()
        defer { fixture.remove() }
        let store = try SagaStore(path: fixture.path)
        let old = Date(timeIntervalSinceNow: -60)
        try store.appendOutbox((0..<5).map {
            OutboxRecord(messageId: "o-\($0)", incomingMessageId: "in-\($0)", position: 0, exchange: "",
                         routingKey: "q", messageType: "T", body: Data("{}".utf8), createdAt: old)
        })
        store.close()
        let worker = fixture.worker
        var cursor: Int64 = 0
        var passes: [[String]] = []
        for _ in 0..<4 {
            let (rows, next) = try await worker.claimUnconfirmedOutbox(createdBefore: Date(), after: cursor, limit: 2)
            passes.append(rows.map(\.messageId))
            worker.publishing.remove(rows.map(\.messageId))
            cursor = next
        }
        #expect(passes == [["o-0", "o-1"], ["o-2", "o-3"], ["o-4"], ["o-0", "o-1"]])
    }
}
