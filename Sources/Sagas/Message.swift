public import Foundation

/// A message: a `Codable` value with a stable type name.
///
/// The type name travels in the AMQP `type` property and selects the handler on the receiving side, so it
/// must not change when the Swift type is renamed. The default is the Swift type's name; override
/// `messageType` to pin it.
public protocol Message: Codable, Sendable {
    static var messageType: String { get }
}

extension Message {
    public static var messageType: String { String(describing: Self.self) }
}

/// The JSON encoding every message and saga state goes through, on the wire and in the store.
///
/// Unknown fields are ignored (Codable's default) so senders can add fields; a missing required field is
/// a decoding error, which the endpoint reports as a malformed message.
public enum MessageCoding {
    public static let contentType = "application/json"

    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        do {
            return try encoder.encode(value)
        } catch {
            throw SagaError.encodingFailed(type: String(describing: T.self), reason: "\(error)")
        }
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, messageType: String) throws -> T {
        do {
            return try decoder.decode(type, from: data)
        } catch let error as DecodingError {
            throw SagaError.malformedMessage(type: messageType, reason: describe(error, body: data))
        } catch {
            throw SagaError.malformedMessage(type: messageType, reason: "\(error)")
        }
    }

    // One shared instance each: creating a coder costs about a third of a small message's coding, and
    // Foundation's coders are safe to use concurrently (their options are guarded by a lock). Nothing
    // changes their options after creation.
    static let encoder = makeEncoder()
    static let decoder = makeDecoder()

    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            // Infinite or NaN (a computed date gone wrong): an encoding error, which sends the message to
            // the error queue, rather than a trap in the arithmetic below and a crash loop.
            guard date.timeIntervalSince1970.isFinite else {
                throw EncodingError.invalidValue(date, .init(codingPath: encoder.codingPath,
                                                             debugDescription: "a date that is not finite"))
            }
            var container = encoder.singleValueContainer()
            try container.encode(iso8601(date))
        }
        return encoder
    }

    /// ISO 8601 in UTC with the fraction of a second, to the microsecond, when there is one:
    /// `2026-01-01T00:00:00Z`, `2026-01-01T00:00:00.75Z`. Foundation's `.iso8601` strategy drops the
    /// fraction, so a saga that stored `now + 0.5 s` read back an earlier time; its decoder reads
    /// fractions (as other platforms write them) and so does ours. Whole seconds keep the short form.
    static func iso8601(_ date: Date) -> String {
        var whole = date.timeIntervalSince1970.rounded(.down)
        var micros = Int(((date.timeIntervalSince1970 - whole) * 1_000_000).rounded())
        if micros == 1_000_000 {
            whole += 1
            micros = 0
        }
        let text = Date(timeIntervalSince1970: whole).formatted(.iso8601)
        guard micros > 0, text.hasSuffix("Z") else { return text }
        var digits = String(micros)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return text.dropLast() + "." + digits + "Z"
    }

    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    static func describe(_ error: DecodingError, body: Data) -> String {
        // Foundation reports a number that does not fit its field (1.5 or 1e20 for an Int) as invalid
        // JSON with no field: say what it is when the body does parse. Only that report: a type's own
        // `init(from:)` may throw data-corrupted errors at the root with a reason worth keeping.
        if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, context.underlyingError == nil,
           context.debugDescription.contains("not valid JSON") {
            do {
                _ = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
                return "a number does not fit the type of its field (a fraction, or too large, for an integer field)"
            } catch {
                // The decoder says only "not valid JSON"; the parser says where and why (JSON nested deeper
                // than it takes, a number no Swift type holds, a body cut short), which the decoder's words
                // hid behind the same reason as a body that is not JSON at all.
                if let why = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String {
                    return "body is not valid JSON: \(why)"
                }
            }
        }
        return describe(error)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "<root>" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let prefix = context.codingPath.isEmpty ? "" : path(context) + "."
            return "missing required field '\(prefix)\(key.stringValue)'"
        case .valueNotFound(_, let context):
            return "null value for required field '\(path(context))'"
        case .typeMismatch(let type, let context):
            return "field '\(path(context))' is not of type \(type)"
        case .dataCorrupted(let context):
            if !context.codingPath.isEmpty { return "field '\(path(context))' is invalid: \(context.debugDescription)" }
            // At the root: Foundation's report of JSON it cannot parse, or a type's own check.
            return context.debugDescription.contains("not valid JSON") || context.underlyingError != nil
                ? "body is not valid JSON (\(context.debugDescription))"
                : "invalid message: \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
