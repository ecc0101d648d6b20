import Foundation
import Testing
@testable import SagaStore

/// The hand-written JSON of header maps and id lists must be read back exactly by a JSON parser, whatever
/// the strings hold.
@Suite struct StoreCodingTests {
    static let awkward = ["plain", "", "quote \" inside", "back\\slash", "new\nline\ttab\r", "\u{1}\u{1f}control",
                          "ünïcødé ✓ 🚀", "slash/ed", "{\"json\": [1]}"]

    @Test func headerMapsRoundTripThroughJSON() throws {
        let coding = HeaderCoding()
        var headers: [String: String] = [:]
        for (index, value) in Self.awkward.enumerated() { headers["k\(index) \(value)"] = value }
        let encoded = try #require(coding.encode(headers).textValue)
        #expect(try coding.decode(encoded, table: "outbox") == headers)
        let parsed = try JSONSerialization.jsonObject(with: Data(encoded.utf8)) as? [String: String]
        #expect(parsed == headers)
        #expect(coding.encode([:]).textValue == "{}")
        #expect(try coding.decode("{}", table: "outbox") == [:])
        // Sorted keys: the same map always gives the same text.
        #expect(coding.encode(["b": "2", "a": "1"]).textValue == #"{"a":"1","b":"2"}"#)
    }

    @Test func outboxRowsWithAnyCharactersAreFoundAndMarked() throws {
        let database = TemporaryDatabase()
        defer { database.remove() }
        let store = try openStore(database)
        let records = Self.awkward.enumerated().map { index, id in
            OutboxRecord(messageId: id, incomingMessageId: id, position: index, exchange: "", routingKey: "q",
                         mandatory: true, messageType: "T", correlationId: nil, replyTo: nil, headers: [:],
                         body: Data(), createdAt: Date(timeIntervalSince1970: 0))
        }
        for id in Self.awkward.prefix(2) { try store.recordInbox(messageId: id, queue: "q", at: Date()) }
        let stored = try store.appendOutbox(records)
        for row in stored { #expect(try store.outbox(forIncoming: row.incomingMessageId) == [row]) }
        let missing = OutboxKey(seq: 10_000)
        #expect(try store.markDispatched(stored.compactMap(\.key) + [missing], at: Date()) == Self.awkward.count)
        #expect(try store.outboxBacklog() == 0)
    }
}
