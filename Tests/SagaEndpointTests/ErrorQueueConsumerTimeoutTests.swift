import AMQPTransport
import BrokerTestSupport
import Foundation
@testable import SagaEndpoint
import Testing

// A pass holds the messages it leaves in the queue until it ends, and RabbitMQ closes a channel whose
// deliveries stay unacknowledged longer than its consumer_timeout (30 min by default, checked about once a
// minute): a long pass (a replay waits for each confirm) lost the messages held on its first windows back
// to the queue, saw them again, and failed saying "the connection or a channel was lost … try again". A
// pass that takes as long fails the same way every time; the operator has to be told it is the broker's
// consumer_timeout. Nothing may be lost either way.
@Suite("Error queue: a pass that outlasts the broker's consumer_timeout", .timeLimit(.minutes(4)))
struct ErrorQueueConsumerTimeoutTests {
    @Test("the pass fails naming consumer_timeout and the broker's reason; every message is still there")
    func passOutlastsConsumerTimeout() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(extraConfig: "consumer_timeout = 1000") }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(url: node.url, connectionName: "consumer-timeout")
        try await connection.declareQueue(QueueDeclaration(name: "transfers.error"))
        let ids = (0..<30).map { "t-\($0)" }
        for id in ids {
            try await connection.publish(.toQueue("transfers.error", AMQPMessage(body: Data("{}".utf8),
                properties: BasicProperties(messageId: id, type: "T"))))
        }
        try await waitUntil(timeout: .seconds(20)) { try await connection.checkQueue("transfers.error").messageCount == 30 }

        let scan = ErrorQueueScan(connection: connection, queue: "transfers.error", window: 10)
        var seen = 0
        do {
            let outcome = try await scan.run { _ in
                seen += 1
                if seen == 11 {
                    // A slow visitor (as a replay waiting for confirms): wait until the broker takes back
                    // the first window's messages (20 of the 30 ready again).
                    let deadline = ContinuousClock.now + .seconds(150)
                    while ContinuousClock.now < deadline,
                          try await connection.checkQueue("transfers.error").messageCount < 19 {
                        try await Task.sleep(for: .milliseconds(500))
                    }
                }
                return .keep
            }
            Issue.record("a pass whose held messages the broker took back ended without saying so: \(outcome)")
        } catch let error as ErrorQueueScanInterrupted {
            #expect("\(error)".contains("consumer_timeout"), "\(error)")
            #expect("\(error)".contains("timed out"), "the broker's own words: \(error)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await connection.checkQueue("transfers.error").messageCount == 30 }
        await connection.close()
    }
}
