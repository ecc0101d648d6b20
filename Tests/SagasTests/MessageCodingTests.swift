import Foundation
import Sagas
import Testing

@Suite("Message and state coding")
struct MessageCodingTests {
    struct Stamped: Message, Equatable {
        var at: Date
    }

    /// Failed before: Foundation's `.iso8601` strategy wrote whole seconds, so `now + 0.5 s` came back as
    /// `now` (a saga comparing a stored due time with the clock saw it pass early).
    @Test("dates keep their fraction of a second, to the microsecond; whole seconds keep the short form",
          arguments: [
              (1_767_225_600.0, #"{"at":"2026-01-01T00:00:00Z"}"#),
              (1_767_225_600.75, #"{"at":"2026-01-01T00:00:00.75Z"}"#),
              (1_767_225_600.000_125, #"{"at":"2026-01-01T00:00:00.000125Z"}"#),
              (1_767_225_600.999_999_9, #"{"at":"2026-01-01T00:00:01Z"}"#),
              (-0.5, #"{"at":"1969-12-31T23:59:59.5Z"}"#),
          ])
    func fractionalSeconds(seconds: Double, json: String) throws {
        let encoded = try MessageCoding.encode(Stamped(at: Date(timeIntervalSince1970: seconds)))
        #expect(String(decoding: encoded, as: UTF8.self) == json)
        let decoded = try MessageCoding.decode(Stamped.self, from: encoded, messageType: "Stamped")
        #expect(abs(decoded.at.timeIntervalSince1970 - seconds) < 0.000_001)
    }

    @Test("dates written by other platforms decode: fractions of any length, offsets")
    func foreignDates() throws {
        let cases: [(String, Double)] = [
            ("2026-12-06T05:00:00.1234567Z", 1_796_533_200.123_456_7),
            ("2026-12-06T05:00:00+01:00", 1_796_529_600),
            ("2026-12-06T05:00:00.5+01:00", 1_796_529_600.5),
        ]
        for (text, seconds) in cases {
            let decoded = try MessageCoding.decode(Stamped.self, from: Data(#"{"at":"\#(text)"}"#.utf8),
                                                   messageType: "Stamped")
            #expect(abs(decoded.at.timeIntervalSince1970 - seconds) < 0.000_001, "\(text)")
        }
    }

    struct Amount: Message {
        var amount: Int
    }

    /// Failed before: Foundation reports such a number as invalid JSON with no field, and so did we.
    @Test("a number that does not fit its integer field is named as such, not as invalid JSON",
          arguments: [#"{"amount":1.5}"#, #"{"amount":99999999999999999999}"#])
    func numberThatDoesNotFit(body: String) {
        #expect(throws: SagaError.malformedMessage(
            type: "Amount", reason: "a number does not fit the type of its field (a fraction, or too large, for an integer field)")) {
            try MessageCoding.decode(Amount.self, from: Data(body.utf8), messageType: "Amount")
        }
        let truncated = #expect(throws: SagaError.self) {
            try MessageCoding.decode(Amount.self, from: Data(#"{"amount":1"#.utf8), messageType: "Amount")
        }
        #expect(truncated?.description.contains("body is not valid JSON") == true, "\(String(describing: truncated))")
    }

    // Failed before (a review helper's hostile-input run): JSON nested deeper than the parser takes and a
    // number no Swift type holds were both "body is not valid JSON", like a body that is not JSON at all.
    @Test("JSON the parser refuses says why: nesting too deep, a number out of range, a body cut short")
    func whyNotJSON() {
        let cases = [
            (String(repeating: "[", count: 600) + String(repeating: "]", count: 600), "nested"),
            (#"{"amount":1e400}"#, "1e400"),
            (#"{"amount":1"#, "end of file"),
        ]
        for (body, word) in cases {
            let error = #expect(throws: SagaError.self) {
                try MessageCoding.decode(Amount.self, from: Data(body.utf8), messageType: "Amount")
            }
            let text = String(describing: error)
            #expect(text.contains("body is not valid JSON") && text.contains(word), "\(text)")
        }
    }

    struct Validated: Message {
        var amount: Int
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            amount = try container.decode(Int.self, forKey: .amount)
            guard amount >= 0 else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "amount must not be negative"))
            }
        }
    }

    // Found in review of the reason above: it replaced a type's own root-level reason.
    @Test("a type's own data-corrupted reason is kept")
    func ownReasonKept() {
        #expect(throws: SagaError.malformedMessage(type: "Validated", reason: "invalid message: amount must not be negative")) {
            try MessageCoding.decode(Validated.self, from: Data(#"{"amount":-1}"#.utf8), messageType: "Validated")
        }
    }

    // Found in review: an infinite date trapped in the encoder (a crash loop for its message).
    @Test("a date that is not finite is an encoding error, not a crash")
    func infiniteDate() {
        #expect(throws: SagaError.self) {
            try MessageCoding.encode(Stamped(at: Date(timeIntervalSince1970: .infinity)))
        }
    }
}

