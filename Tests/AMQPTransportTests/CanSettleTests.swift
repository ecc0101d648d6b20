// canSettle: whether a delivery kept unacknowledged (the endpoint's held deliveries) can still be settled,
// or has been requeued by the broker with its channel or connection.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("canSettle")
struct CanSettleTests {
    @Test("true on the opening the delivery came on; false for it once the connection was lost and recovered")
    func falseAfterRecovery() async throws {
        try await withConnection("can-settle") { connection, scratch in
            let queue = scratch.queue("can-settle")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("c1")))
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            let first = try await inbox.next()
            #expect(await connection.canSettle(first.tag))
            await connection.simulateNetworkFailure()
            try await waitUntil(timeout: .seconds(30), message: "the connection to recover") {
                let (recoveries, connected) = await (connection.recoveryCount, connection.isConnected)
                return recoveries >= 1 && connected
            }
            #expect(!(await connection.canSettle(first.tag)), "a tag of the lost connection")
            let again = try await inbox.next()
            #expect(again.properties.messageId == "c1")
            #expect(await connection.canSettle(again.tag))
            try await connection.ack(again.tag)
            try await consumer.cancel()
        }
    }
}
