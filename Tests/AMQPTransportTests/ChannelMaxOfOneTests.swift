// A connection uses channel 1 for declarations and channel 2 for publishing. RabbitMQ counts open channels,
// not their numbers, so with a channel_max of 1 it let channel 2 open and closed the whole connection (530)
// at the first use of channel 1: the connect succeeded, every declaration failed, and recovery connected
// and was closed again for ever.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("channel_max of 1", .timeLimit(.minutes(3)))
struct ChannelMaxOfOneTests {
    @Test("channel_max=1 in a URL is refused as .invalidURL, saying why")
    func refusedInURL() throws {
        let error = try #require(throws: AMQPError.self) { try AMQPConfiguration(url: "amqp://h/?channel_max=1") }
        #expect(error.code == .invalidURL)
        #expect(error.message.contains("channel_max 1"))
        #expect(try AMQPConfiguration(url: "amqp://h/?channel_max=2").channelMax == 2)
    }

    @Test("channelMax = 1 set in code is .invalidConfiguration before any socket")
    func refusedInCode() async throws {
        var configuration = try AMQPConfiguration(url: TestBroker.url)
        configuration.channelMax = 1
        let error = await amqpError { _ = try await AMQPConnection.connect(configuration, logger: quietLogger) }
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))")
        #expect(error?.message.contains("channel_max 1") == true, "\(String(describing: error))")
    }

    // Failed before: the connect succeeded and the first declaration closed the connection (530).
    @Test("a broker whose own channel_max is 1: the connect fails with .handshakeFailed, not transient")
    func brokerWithChannelMaxOfOne() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(extraConfig: "channel_max = 1") }
        defer { node.shutdown() }
        let error = await amqpError { _ = try await AMQPConnection.connect(url: node.url, logger: quietLogger) }
        #expect(error?.code == .handshakeFailed, "\(String(describing: error))")
        #expect(error?.isTransient == false, "\(String(describing: error))")
        #expect(error?.message.contains("channel_max 1") == true, "\(String(describing: error))")
    }
}
