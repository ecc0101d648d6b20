@testable import AMQPTransport
import BrokerTestSupport
import Foundation
import MetricsTestKit
@testable import SagaEndpoint
import Sagas
import Testing

/// A message whose error-queue copy the broker does not confirm (here nacked by an error queue full with
/// `reject-publish`) is kept unacknowledged and processed again in process, to be copied again: the copy
/// is stored nowhere else. (A command the broker returns for want of a queue, or refuses, no longer holds its
/// delivery: it is safe in the outbox, `UnroutableOutgoingTests` and `FullDestinationTests`.) Failed before:
/// it was handed back at once and came round about 700 times a second (2,117 duplicates in 3 s), each time
/// with a transaction and a warning.
@Suite("A message whose outgoing messages are not confirmed", .timeLimit(.minutes(3)))
struct UnconfirmedRedeliveryTests {
    @Test("comes back after a growing delay, not at once; the other messages go on; once its copy is taken, it is settled")
    func refusedCopyBacksOff() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("brittle")
        try await harness.declareQueue("done")
        // Full from the start: every copy sent to it is nacked.
        _ = try await harness.connection.deleteQueue("brittle.error")
        try await harness.connection.declareQueue(QueueDeclaration(
            name: "brittle.error", arguments: ["x-max-length": .int64(0), "x-overflow": .string("reject-publish")]))
        let runs = Tally()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { message, context in
            guard message.note != "boom" else {
                runs.increment()
                throw Explode.Failure()
            }
            try context.send(Explode(note: "done"), to: "done")
        }
        let metrics = TestMetrics()
        let endpoint = harness.startEndpoint(registry, queues: ["brittle"], database: "brittle", metrics: metrics) {
            $0.immediateRetries = 0
            $0.delayedRetries = []
        }
        try await harness.send(Explode(note: "boom"), to: "brittle", messageId: "boom-1")
        try await waitUntil(timeout: .seconds(30)) { runs.count >= 1 }
        try await Task.sleep(for: .seconds(3))
        // Delays of 0.1, 0.2, 0.4, 0.8 and 1.6 s: about five rounds in these 3 s.
        let rounds = runs.count
        #expect(rounds >= 2 && rounds <= 20, "\(rounds) rounds in 3 s")
        // Each round's copy was nacked: counted for the operator's alert.
        #expect(try metrics.expectCounter("saga_messages_unconfirmed_total").totalValue >= rounds - 1)

        // Another message of the same queue is not held up by it.
        try await harness.send(Explode(note: "fine"), to: "brittle", messageId: "fine-2")
        let done = try await harness.receive(from: "done", count: 1, timeout: .seconds(20))
        #expect(done.count == 1)

        // Once the error queue takes the copy, the next round sends it and the delivery is acked.
        _ = try await harness.connection.deleteQueue("brittle.error")
        try await harness.connection.declareQueue(QueueDeclaration(name: "brittle.error"))
        let copies = try await harness.errorMessages(of: "brittle", count: 1, timeout: .seconds(30))
        #expect(copies.map(\.properties.messageId) == ["boom-1"])
        try await waitUntil(timeout: .seconds(30), message: "the delivery acknowledged once its copy was confirmed") {
            try await harness.depth("brittle") == 0
        }
        await harness.stop(endpoint)
        #expect(try await harness.depth("brittle") == 0)
        await harness.tearDown()
    }
}

@Suite("HeldDeliveries: delays and held deliveries")
struct UnconfirmedRedeliveryUnitTests {
    @Test("the delay doubles per message id up to the maximum, starts over after a success, and holds until released")
    func delays() {
        let redelivery = HeldDeliveries(initialDelay: .milliseconds(100), maximumDelay: .seconds(5))
        let tag = { (value: UInt64) in DeliveryTag(channel: 3, channelEpoch: 1, value: value) }
        let delays = (1...8).map { redelivery.hold(tag($0), messageId: "m") }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .milliseconds(1600), .milliseconds(3200), .seconds(5), .seconds(5)])
        #expect(redelivery.hold(tag(9), messageId: "other") == .milliseconds(100), "per message id")
        #expect(Set(redelivery.held) == Set((1...9).map(tag)))
        redelivery.release((1...9).map { tag(UInt64($0)) })
        #expect(redelivery.held.isEmpty)
        redelivery.succeeded(["m"])
        #expect(redelivery.hold(tag(10), messageId: "m") == .milliseconds(100))
    }

    /// A message without a message id is rejected unread (`MissingMessageId`) and held only while its
    /// error-queue copy is not confirmed. Failed before (400 ms): all such messages shared one count, under
    /// the id "", so each one's rounds made the others wait longer, and one's confirmed copy reset them all.
    @Test("messages without a message id are each delayed on their own count")
    func withoutMessageId() {
        let redelivery = HeldDeliveries(initialDelay: .milliseconds(100), maximumDelay: .seconds(5))
        let tag = { (value: UInt64) in DeliveryTag(channel: 3, channelEpoch: 1, value: value) }
        #expect(redelivery.hold(tag(1), messageId: "") == .milliseconds(100))
        #expect(redelivery.hold(tag(1), messageId: "") == .milliseconds(200), "the same delivery, kept again")
        #expect(redelivery.hold(tag(2), messageId: "") == .milliseconds(100), "another message")
        redelivery.succeeded([""])
        #expect(redelivery.hold(tag(1), messageId: "") == .milliseconds(400), "not reset by another's copy")
        redelivery.release([tag(1), tag(2)])
        #expect(redelivery.held.isEmpty)
    }

    /// Failed before (there was no way to end the waits): a held delivery was handed back only after its
    /// delay, by a task that outlived the stopped endpoint, on a connection closed by then.
    @Test("handBackAll hands every held delivery back at once, not after its delay", .timeLimit(.minutes(1)))
    func handBackAllEndsTheWaits() async {
        let redelivery = HeldDeliveries(initialDelay: .seconds(3600), maximumDelay: .seconds(3600))
        let handedBack = Tally()
        let retried = Tally()
        for value: UInt64 in 1...3 {
            let tag = DeliveryTag(channel: 3, channelEpoch: 1, value: value)
            let delay = redelivery.hold(tag, messageId: "m\(value)")
            redelivery.schedule(tag, after: delay, retry: { retried.increment() })
        }
        #expect(redelivery.held.count == 3)
        await redelivery.handBackAll { tag in
            handedBack.increment()
            redelivery.release([tag])
        }
        #expect(handedBack.count == 3)
        #expect(retried.count == 0)
        #expect(redelivery.held.isEmpty)
    }

    /// Failed before (one warning per message): a batch whose events all had no route logged a line for
    /// each, thousands a second while a queue was missing.
    @Test("a batch's unconfirmed publishes make one warning per destination and outcome, with a count")
    func unconfirmedPublishesAreGrouped() {
        var publishes = UnconfirmedPublishes()
        for index in 1...100 {
            publishes.add(exchange: "", routingKey: "stock", outcome: "returned(312 NO_ROUTE)", messageId: "m\(index)",
                          messageType: "ReserveStock")
        }
        publishes.add(exchange: "", routingKey: "bank", outcome: "nacked", messageId: "c1", messageType: "DebitAccount")
        #expect(publishes.groups == [
            .init(exchange: "", routingKey: "stock", outcome: "returned(312 NO_ROUTE)", count: 100, messageId: "m1",
                  messageType: "ReserveStock"),
            .init(exchange: "", routingKey: "bank", outcome: "nacked", count: 1, messageId: "c1", messageType: "DebitAccount"),
        ])
    }

    // An operator's review: one warning per batch was still 1,391 lines in 25 s while a length limit
    // nacked every publish.
    @Test("warnings about one destination and outcome come at most once a second, with the skipped count")
    func warningsAreThrottled() {
        let throttle = WarningThrottle(interval: .seconds(1))
        let start = ContinuousClock.now
        #expect(throttle.admit("bank nacked", messages: 5, now: start) == 5)
        #expect(throttle.admit("bank nacked", messages: 7, now: start + .milliseconds(300)) == nil)
        #expect(throttle.admit("stock returned", messages: 1, now: start + .milliseconds(400)) == 1, "another key")
        #expect(throttle.admit("bank nacked", messages: 2, now: start + .milliseconds(600)) == nil)
        #expect(throttle.admit("bank nacked", messages: 1, now: start + .milliseconds(1100)) == 10, "1 + the 9 skipped")
    }
}
