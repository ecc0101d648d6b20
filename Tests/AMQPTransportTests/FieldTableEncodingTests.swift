// Encoding to rabbitmq-c's C structures and decoding back, without a broker: every kind, nesting, and
// values larger than the arena's blocks.
@testable import AMQPTransport
import CRabbitMQ
import Foundation
import Testing

@Suite("Field tables and properties through the C structures (no broker)")
struct FieldTableEncodingTests {
    @Test("every kind survives CArena encoding and CDecode decoding")
    func everyKind() {
        let arena = CArena()
        let table = PropertiesRoundTripTests.everyKind
        #expect(CDecode.table(arena.table(table)) == table)
    }

    @Test("large and many values (beyond one arena block) and a reset arena")
    func largeValues() {
        let arena = CArena()
        var table: FieldTable = ["big": .string(String(repeating: "é", count: 10_000)), "blob": .bytes(Data(count: 70_000))]
        for index in 0..<500 { table["key-\(index)"] = .array([.int32(Int32(index)), .string("v\(index)")]) }
        #expect(CDecode.table(arena.table(table)) == table)
        arena.reset()
        #expect(CDecode.table(arena.table(table)) == table)
        arena.reset()
        let small: FieldTable = ["a": 1]
        #expect(CDecode.table(arena.table(small)) == small)
    }

    // A long string ('S') is bytes on the wire, and producers put non-UTF-8 in it (the .NET client sends
    // every byte[] header as one). Decoded as text, the invalid bytes became U+FFFD: an error-queue copy,
    // and a replay of it, republished other bytes than the endpoint had received.
    @Test("a long string that is not UTF-8 keeps its bytes through decoding and encoding again")
    func longStringThatIsNotUTF8() {
        let arena = CArena()
        let raw = Data([0x41, 0xFF, 0xFE, 0x00, 0xC3])
        var field = arena.fieldValue(.bytes(raw))
        field.kind = UInt8(truncatingIfNeeded: AMQP_FIELD_KIND_UTF8.rawValue)
        let decoded = CDecode.value(field)
        #expect(CDecode.data(arena.fieldValue(decoded).value.bytes) == raw)
        #expect(decoded.stringValue == nil, "\(decoded)")
        #expect(CDecode.value(arena.fieldValue(.string("é-ok"))) == .string("é-ok"))
    }

    @Test("basic properties survive encoding and decoding")
    func properties() {
        let arena = CArena()
        let properties = PropertiesRoundTripTests.everyProperty
        #expect(CDecode.properties(arena.properties(properties)) == properties)
        #expect(CDecode.properties(arena.properties(BasicProperties())) == BasicProperties())
    }

    @Test("recent strings are reused and still correct when they differ")
    func recentStrings() {
        var cache = RecentStrings()
        let arena = CArena()
        for round in 0..<3 {
            for index in 0..<20 {
                let text = "routing-key-\(index)"
                #expect(cache.string(arena.bytes(text)) == text, "round \(round)")
            }
        }
        #expect(cache.string(amqp_bytes_t(len: 0, bytes: nil)) == "")
    }
}
