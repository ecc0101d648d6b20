// Mandatory publishes nobody receives come back as basic.return (312 NO_ROUTE), matched to the right
// publish of a batch, while the routable ones of the same batch are confirmed.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Mandatory publishes to no route")
struct MandatoryPublishTests {
    @Test("an unroutable mandatory publish is returned 312 NO_ROUTE; the routable ones of its batch are confirmed")
    func returnedInABatch() async throws {
        try await withConnection("mandatory") { connection, scratch in
            let queue = scratch.queue("routable")
            let exchange = scratch.exchange("unbound")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .direct, durable: false))
            let nowhere = TestBroker.uniqueName("no-such-queue")
            let outcomes = await connection.publish([
                .toQueue(queue, message("a")),
                .toQueue(nowhere, message("b")),
                .toQueue(queue, message("c")),
                PublishRequest(exchange: exchange, routingKey: "k", message: message("d")),
                .toQueue(nowhere, message("e"), mandatory: false),
                .toQueue(queue, message("f")),
            ])
            #expect(outcomes == [
                .confirmed,
                .returned(replyCode: 312, replyText: "NO_ROUTE"),
                .confirmed,
                .returned(replyCode: 312, replyText: "NO_ROUTE"),
                .confirmed,  // not mandatory: silently dropped, and confirmed
                .confirmed,
            ])
            #expect(try await connection.checkQueue(queue).messageCount == 3)
        }
    }

    @Test("identical unroutable messages in one batch each get their own return")
    func identicalReturns() async throws {
        try await withConnection("mandatory-same") { connection, scratch in
            let queue = scratch.queue("routable")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let nowhere = TestBroker.uniqueName("no-such-queue")
            let same = AMQPMessage(body: Data("same".utf8))
            let outcomes = await connection.publish([
                .toQueue(nowhere, same), .toQueue(queue, same), .toQueue(nowhere, same), .toQueue(nowhere, same),
            ])
            let returned = PublishOutcome.returned(replyCode: 312, replyText: "NO_ROUTE")
            #expect(outcomes == [returned, .confirmed, returned, returned])
        }
    }

    // Failed before: the return of the second publish went to the first, identical, still waiting for its
    // queue (held here by suspending the queue's process), so the dropped one was reported confirmed and
    // the delivered one returned.
    @Test("identical publishes, the first routed and unconfirmed, the second unroutable: each gets its own fate")
    func identicalPublishesRoutedDifferently() async throws {
        try await withConnection("mandatory-unbound") { connection, scratch in
            let queue = scratch.queue("held")
            let exchange = scratch.exchange("direct")
            try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .direct, durable: false))
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            let binding = BindingDeclaration(source: exchange, destination: queue, routingKey: "k")
            try await connection.bind(binding)
            try await runOnThread { try TestBroker.queueProcess(queue, "suspend") }
            var suspended = true
            defer { if suspended { try? TestBroker.queueProcess(queue, "resume") } }

            let request = PublishRequest(exchange: exchange, routingKey: "k", message: message("same"))
            let first = Task { await connection.publish([request]) }
            try await Task.sleep(for: .milliseconds(500))  // routed to the suspended queue: no confirm yet
            try await connection.unbind(binding)
            let second = await connection.publish([request])
            try await runOnThread { try TestBroker.queueProcess(queue, "resume") }
            suspended = false
            #expect(second == [.returned(replyCode: 312, replyText: "NO_ROUTE")])
            #expect(await first.value == [.confirmed])
            #expect(try await connection.checkQueue(queue).messageCount == 1)
        }
    }

    @Test("a return is matched by content: same destination, different headers or mandatory flag")
    func returnMatchedByContent() async throws {
        try await withConnection("mandatory-content") { connection, scratch in
            // A headers exchange routes on headers alone: same exchange and routing key, different fates.
            let exchange = scratch.exchange("headers")
            let queue = scratch.queue("gold")
            try await connection.declareExchange(ExchangeDeclaration(name: exchange, kind: .headers, durable: false))
            // Durable and persistent: the routed publishes' acks wait for the disk, so the returns of the
            // publishes after them overtake them.
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: true))
            try await connection.bind(BindingDeclaration(source: exchange, destination: queue,
                                                         arguments: ["x-match": "all", "tier": "gold"]))
            func tier(_ value: String) -> PublishRequest {
                PublishRequest(exchange: exchange, routingKey: "", message: AMQPMessage(
                    body: Data("same".utf8),
                    properties: BasicProperties(headers: ["tier": .string(value)], deliveryMode: .persistent)))
            }
            let returned = PublishOutcome.returned(replyCode: 312, replyText: "NO_ROUTE")
            let outcomes = await connection.publish([tier("gold"), tier("silver"), tier("gold"), tier("bronze")])
            #expect(outcomes == [.confirmed, returned, .confirmed, returned])

            // Not mandatory: never returned, so a later mandatory twin's return is not pinned on it.
            let nowhere = TestBroker.uniqueName("no-such-queue")
            let twins = await connection.publish([
                .toQueue(nowhere, message("twin"), mandatory: false), .toQueue(nowhere, message("twin")),
            ])
            #expect(twins == [.confirmed, returned])
        }
    }

    @Test("publish(_:) of one unroutable message throws .unroutable with reply code 312")
    func singlePublishThrows() async throws {
        try await withConnection("mandatory-single") { connection, _ in
            let nowhere = TestBroker.uniqueName("no-such-queue")
            let error = await amqpError { try await connection.publish(.toQueue(nowhere, message("x"))) }
            #expect(error?.code == .unroutable)
            #expect(error?.replyCode == 312)
            #expect(error?.message == "NO_ROUTE")
            #expect(error?.operation?.contains(nowhere) == true)
            // The connection and its publish channel are fine afterwards.
            #expect(await connection.isConnected)
            let outcomes = await connection.publish([.toQueue(nowhere, message("y"), mandatory: false)])
            #expect(outcomes == [.confirmed])
        }
    }
}
