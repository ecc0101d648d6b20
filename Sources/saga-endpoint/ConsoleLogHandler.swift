import AMQPTransport
import Foundation
import Logging
import SagaOperations

/// How the executable writes its log: swift-log's text layout, or one JSON object per line for a log
/// collector (Loki, Elasticsearch, CloudWatch), which otherwise has to parse `key=value` text.
enum LogFormat: String, CaseIterable, Sendable {
    case text, json

    static let names = allCases.map(\.rawValue).joined(separator: "|")
}

/// The executable's log handler: one line per record on stderr, stamped in UTC to the millisecond.
/// swift-log's `StreamLogHandler` stamps local time to the second, so the records of one second could not
/// be put in order, nor matched with another process's or the broker's log. The text layout is otherwise
/// `StreamLogHandler`'s; the JSON layout has `time`, `level`, `label`, `message`, `source` and the metadata
/// as fields (a metadata key that is one of those is written as `metadata.<key>`).
struct ConsoleLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider

    init(label: String, format: LogFormat, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        if let error = event.error {
            all["error.message"] = "\(error)"
            all["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        let line = Self.line(format, time: Self.timestamp(), level: event.level, label: label,
                             message: "\(event.message)", source: event.source, metadata: all)
        StandardStreams.write(line + "\n", to: FileHandle.standardError)
    }

    static func line(_ format: LogFormat, time: String, level: Logger.Level, label: String, message: String,
                     source: String, metadata: Logger.Metadata) -> String {
        switch format {
        case .text:
            // One record, one line: a line break in a value (a reason quoting a message) started a line that
            // could pass for a record of its own; other control characters acted on the reader's terminal.
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\(oneLine(hidingPasswords("\($0.value)")))" }
                .joined(separator: " ")
            return "\(time) \(level)\(label.isEmpty ? "" : " ")\(label):\(fields.isEmpty ? "" : " " + fields) "
                + "[\(source)] \(oneLine(hidingPasswords(message)))"
        case .json:
            var object: [String: Any] = ["time": time, "level": level.rawValue, "label": label,
                                         "message": hidingPasswords(message), "source": source]
            for (key, value) in metadata {
                object[object[key] == nil ? key : "metadata.\(key)"] = json(value)
            }
            return (try? JSONText.render(object, pretty: false)) ?? #"{"message":"unencodable log record"}"#
        }
    }

    /// One line of visible text (`PrintableText`): ids and types from the broker are logged as they came.
    static func oneLine(_ text: String) -> String { PrintableText.oneLine(text) }

    /// `text` with the password of every AMQP URL in it hidden (`AMQPConfiguration.redactingURLs`). The
    /// endpoint's own records give URLs redacted, but some quote the broker's or a library's text, which
    /// quotes names as they were created: a vhost named like a URL, deleted under `run`, put its password
    /// into every reconnect warning and the "not ready" warning. Every credential form holds an `@`, so
    /// other text is passed through unscanned.
    static func hidingPasswords(_ text: String) -> String {
        text.contains("@") ? AMQPConfiguration.redactingURLs(in: text) : text
    }

    static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): hidingPasswords(text)
        case .stringConvertible(let convertible): hidingPasswords(convertible.description)
        case .dictionary(let dictionary): dictionary.mapValues(json)
        case .array(let array): array.map(json)
        }
    }

    /// Now, as `2026-12-07T01:45:12.345Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec),
                      Int(now.tv_nsec / 1_000_000))
    }
}
