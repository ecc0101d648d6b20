import AMQPTransport
import BrokerTestSupport
import Foundation
@testable import SagaEndpoint
import Testing

// A pass over an error queue holds every message it leaves there until it ends, 1,000 per consumer
// channel. A broker lets a connection open `channel_max` channels (2047 by default), so a pass that
// keeps more than about 2 million messages cannot go on: it used to fail with the transport's bare
// `.channelLimit` ("every channel up to the negotiated channel_max … is in use", operation basic.consume),
// which told the operator neither how far it got nor what to do. A node with channel_max 5 leaves a
// connection three consumer channels (1 declares, 2 publishes): windows of 8 (the first), 1,000 and 1,000.
@Suite("Error queue: a pass that holds more messages than the connection has channels for",
       .timeLimit(.minutes(6)))
struct ErrorQueuePassLimitsTests {
    static let parked = 3_500
    static let held = 2_008

    static func park(_ count: Int, on connection: AMQPConnection, originalQueue: String? = "transfers") async throws {
        try await connection.declareQueue(QueueDeclaration(name: "transfers"))
        try await connection.declareQueue(QueueDeclaration(name: "transfers.error"))
        for start in stride(from: 0, to: count, by: 500) {
            let requests = (start..<min(start + 500, count)).map { index in
                PublishRequest.toQueue("transfers.error", AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
                    contentType: "application/json",
                    headers: originalQueue.map { ["x-original-queue": .string($0)] } ?? [:],
                    deliveryMode: .persistent, messageId: "p-\(index)", type: "TransferRequested")))
            }
            for outcome in await connection.publish(requests) { #expect(outcome == .confirmed) }
        }
        try await waitUntil(timeout: .seconds(20)) { try await connection.checkQueue("transfers.error").messageCount == count }
    }

    @Test("show, list and replay --all stop with a typed error naming how far they got; nothing is lost")
    func tooManyHeldMessages() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(extraConfig: "channel_max = 5") }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(url: node.url, connectionName: "pass-limits")
        try await Self.park(Self.parked, on: connection, originalQueue: nil)
        let admin = ErrorQueueAdmin(connection: connection, errorQueue: "transfers.error")

        // Searching for the last one holds the 2,008 before it when the channels run out.
        do {
            let found = try await admin.show(messageId: "p-\(Self.parked - 1)")
            Issue.record("show went past the channel limit: \(String(describing: found?.messageId))")
        } catch let error as ErrorQueuePassTooLong {
            #expect(error.visited == Self.held, "\(error)")
            #expect(error.queued == Self.parked)
            #expect(error.removed == 0)
            #expect("\(error)".contains("channel_max 5"), "\(error)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await admin.count() == Self.parked }

        do {
            let entries = try await admin.list(limit: 10_000)
            Issue.record("list went past the channel limit: \(entries.count)")
        } catch let error as ErrorQueuePassTooLong {
            #expect(error.visited == Self.held, "\(error)")
            #expect("\(error)".contains("--limit \(Self.held)"), "\(error)")
        }
        try await waitUntil(timeout: .seconds(20)) { try await admin.count() == Self.parked }

        // None can be replayed (no original queue): every one is skipped and held.
        var skipped = 0
        do {
            _ = try await admin.replayAll { _ in skipped += 1 }
            Issue.record("replay --all went past the channel limit")
        } catch let error as ErrorQueuePassTooLong {
            #expect(error.visited == Self.held && error.removed == 0, "\(error)")
        }
        #expect(skipped == Self.held)
        try await waitUntil(timeout: .seconds(20)) { try await admin.count() == Self.parked }
        await connection.close()
    }

    @Test("replay --all of more messages than the channels could hold: windows it emptied free their channel")
    func replayAllFreesItsChannels() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(extraConfig: "channel_max = 5") }
        defer { node.shutdown() }
        let connection = try await AMQPConnection.connect(url: node.url, connectionName: "pass-limits-replay")
        try await Self.park(Self.parked, on: connection)
        let admin = ErrorQueueAdmin(connection: connection, errorQueue: "transfers.error")
        let outcome = try await admin.replayAll()
        #expect(outcome.replayed == Self.parked)
        #expect(try await admin.count() == 0)
        #expect(try await connection.checkQueue("transfers").messageCount == Self.parked)
        await connection.close()
    }
}
