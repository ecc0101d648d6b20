import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

/// `x-delivery-count` is the quorum queue's count of hand-backs, but on a classic queue it is whatever the
/// publisher wrote: any publisher on the vhost can send it. The warning about a hand-back (gone since
/// deliveries are no longer handed back, `HeldDeliveries`) added one to it, and `Int64.max` trapped there:
/// the endpoint process died at the first hand-back of such a message (here its error-queue copy refused by
/// a full error queue), and again after every restart while the message stayed in the queue. Kept as a
/// guard for whatever reads the header next. Runs the fixture as a child process, so a trap ends that
/// process, not the tests.
@Suite("A forged x-delivery-count does not stop the endpoint", .timeLimit(.minutes(3)))
struct ForgedDeliveryCountTests {
    @Test("a message whose x-delivery-count is Int64.max is kept, retried, and error-queued once there is room")
    func deliveryCountAtInt64Max() async throws {
        let harness = try await EndpointHarness.make()
        let vhost = harness.vhost
        // The error queue refuses the copy, so the endpoint keeps the delivery and tries again.
        _ = try await runOnThread {
            try TestBroker.rabbitmqctl(["set_policy", "-p", vhost, "--apply-to", "queues", "full-errors",
                                        #"^counters\.error$"#, #"{"max-length":0,"overflow":"reject-publish"}"#])
        }
        let fixture = try await harness.startedFixture(app: "counter", database: "counters")
        try await harness.sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", headers: ["x-delivery-count": .int64(.max)], deliveryMode: .persistent,
            messageId: "forged-count-1", type: "NoSuchType"), to: "counters")
        let warning = "outgoing messages not confirmed"
        try await waitUntil(timeout: .seconds(30), message: "neither the refused copy's warning nor an exit") {
            !fixture.isRunning || fixture.errorOutput().contains(warning)
        }
        #expect(fixture.isRunning, "the endpoint died: \(fixture.errorOutput().suffix(3000))")

        _ = try await runOnThread { try TestBroker.rabbitmqctl(["clear_policy", "-p", vhost, "full-errors"]) }
        let copies = try await harness.errorMessages(of: "counters", count: 1, timeout: .seconds(30))
        #expect(copies.first?.properties.messageId == "forged-count-1")
        #expect(fixture.isRunning)
        let status = try await harness.terminate(fixture, timeout: .seconds(60))
        #expect(status == 0)
        await harness.tearDown()
    }
}
