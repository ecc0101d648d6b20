// ackConfirmed: an acknowledgement the broker has handled before the call returns, for a caller that
// reports a message gone (an operator's delete) and must not have it come back with a lost connection.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("ackConfirmed")
struct ConfirmedAckTests {
    @Test("the message stays gone when the connection is lost right after; the consumer goes on")
    func survivesAConnectionLostAtOnce() async throws {
        try await withConnection("ack-confirmed") { connection, scratch in
            let queue = scratch.queue("ack-confirmed")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            _ = await connection.publish((1...3).map { .toQueue(queue, message("m\($0)")) })
            let consumer = try await connection.consume(queue: queue, prefetch: 10)
            let inbox = Inbox(consumer)
            let three = try await inbox.take(3)
            try await connection.ackConfirmed(three[1].tag)
            await connection.simulateNetworkFailure()
            try await connection.waitUntilConnected()
            // The other two come back on the recovered consumer; m2 does not.
            let again = try await inbox.take(2)
            #expect(again.compactMap(\.properties.messageId).sorted() == ["m1", "m3"])
            try await connection.ack(again[1].tag, multiple: true)
            try await consumer.cancel()
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }

    @Test("a delivery of an earlier connection throws staleDelivery: nothing was acknowledged")
    func staleDeliveryThrows() async throws {
        try await withConnection("ack-confirmed-stale") { connection, scratch in
            let queue = scratch.queue("ack-confirmed-stale")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await connection.publish(.toQueue(queue, message("s1")))
            let consumer = try await connection.consume(queue: queue)
            let inbox = Inbox(consumer)
            let first = try await inbox.next()
            await connection.simulateNetworkFailure()
            // The socket is shut, but until the pump notices, the old session still counts as connected
            // (a fresh-clone CI run acked on it and got .connectionLost): wait for the recovery itself.
            try await waitUntil(timeout: .seconds(30), message: "the connection to recover") {
                let (recoveries, connected) = await (connection.recoveryCount, connection.isConnected)
                return recoveries >= 1 && connected
            }
            do {
                try await connection.ackConfirmed(first.tag)
                Issue.record("a delivery of the lost connection was taken for acknowledged")
            } catch let error as AMQPError {
                #expect(error.code == .staleDelivery, "\(error)")
            }
            let again = try await inbox.next()
            #expect(again.properties.messageId == "s1")
            try await connection.ackConfirmed(again.tag)
            try await consumer.cancel()
            #expect(try await connection.checkQueue(queue).messageCount == 0)
        }
    }
}
