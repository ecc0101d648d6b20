import AMQPTransport
import Foundation
import Logging

// The optional JSON config file of `run` and `bank` (`--config PATH` or `SAGA_CONFIG`), the lowest layer
// below flags and environment variables. Keys are the flags' names without the dashes. Top-level keys
// apply to both commands; a `run` or `bank` object holds that command's own settings and may override a
// top-level one. The database is per command (like SAGA_DATABASE and BANK_DATABASE), so it lives only
// in a section:
//
//     {
//       "amqp-url": "amqp://saga:secret@rabbit:5672/prod",
//       "log-level": "notice",
//       "http-port": 9464,
//       "run": { "database": "/var/lib/saga/saga.sqlite", "bank-timeout": 30 },
//       "bank": { "database": "/var/lib/saga/bank.sqlite", "http-port": 9465, "closed-accounts": ["x"] }
//     }
//
// The whole file is checked when it is loaded, both sections included: an unknown key (a typo) or a
// value of the wrong type stops the command with an error naming the file, the key and what was
// expected.

/// A setting of the config file: its key and what its value must be.
struct ConfigKey: Hashable, Sendable {
    enum Kind: Hashable, Sendable {
        /// A non-empty string.
        case string
        /// A string, empty allowed (an empty prefix turns a rule off).
        case text
        /// One of swift-log's level names.
        case logLevel
        /// `text` or `json`.
        case logFormat
        case integer(ClosedRange<Int>)
        /// A positive number of seconds.
        case seconds
        case bool
        /// Account names: an array of strings, or one comma-separated string.
        case accounts
    }

    let name: String
    let kind: Kind

    static let amqpURL = ConfigKey(name: "amqp-url", kind: .string)
    static let database = ConfigKey(name: "database", kind: .string)
    static let logLevel = ConfigKey(name: "log-level", kind: .logLevel)
    static let logFormat = ConfigKey(name: "log-format", kind: .logFormat)
    static let prefetch = ConfigKey(name: "prefetch", kind: .integer(1...Int(UInt16.max)))
    static let batchSize = ConfigKey(name: "batch-size", kind: .integer(1...1_000_000))
    static let httpPort = ConfigKey(name: "http-port", kind: .integer(0...65535))
    static let httpHost = ConfigKey(name: "http-host", kind: .string)
    static let topologyDir = ConfigKey(name: "topology-dir", kind: .string)
    static let declareTopology = ConfigKey(name: "declare-topology", kind: .bool)
    static let bankTimeout = ConfigKey(name: "bank-timeout", kind: .seconds)
    static let shutdownTimeout = ConfigKey(name: "shutdown-timeout", kind: .seconds)
    static let debitFee = ConfigKey(name: "debit-fee", kind: .integer(0...Int.max))
    static let creditFee = ConfigKey(name: "credit-fee", kind: .integer(0...Int.max))
    static let refundFee = ConfigKey(name: "refund-fee", kind: .integer(0...Int.max))
    static let closedAccounts = ConfigKey(name: "closed-accounts", kind: .accounts)
    static let underfundedAccounts = ConfigKey(name: "underfunded-accounts", kind: .accounts)
    static let closedPrefix = ConfigKey(name: "closed-prefix", kind: .text)
    static let underfundedPrefix = ConfigKey(name: "underfunded-prefix", kind: .text)

    /// Settings of both commands, allowed at the top level and in either section.
    static let shared: [ConfigKey] = [amqpURL, logLevel, logFormat, prefetch, batchSize, httpPort, httpHost, topologyDir,
                                      declareTopology, shutdownTimeout]
}

/// The commands that read the config file, each with its section.
enum ConfigSection: String, CaseIterable, Sendable {
    case run, bank

    /// The keys allowed in this section.
    var keys: [ConfigKey] {
        switch self {
        case .run: ConfigKey.shared + [.database, .bankTimeout]
        case .bank:
            ConfigKey.shared + [.database, .debitFee, .creditFee, .refundFee, .closedAccounts, .underfundedAccounts,
                                .closedPrefix, .underfundedPrefix]
        }
    }
}

/// A config file that cannot be used, with the file, the key and what was wrong.
struct ConfigFileError: Error, CustomStringConvertible, Equatable {
    var path: String
    /// The key as written in the file (`run.prefetch`), nil for a problem with the whole file.
    var key: String?
    var problem: String

    var description: String {
        "config file \(path): " + (key.map { "'\($0)' " } ?? "") + problem
    }
}

/// A loaded, checked config file, seen from one command: its top-level settings overlaid by its section.
struct ConfigFile: Sendable {
    let path: String
    let section: ConfigSection
    private let values: [String: JSONValue]
    /// Where each value was written (`prefetch` or `bank.prefetch`), for messages.
    private let written: [String: String]

    init(path: String, section: ConfigSection) throws(ConfigFileError) {
        self.path = path
        self.section = section
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw ConfigFileError(path: path, key: nil, problem: reason)
        }
        let document: JSONValue
        do {
            document = try JSONValue.parse(data)
        } catch {
            throw ConfigFileError(path: path, key: nil, problem: "is not valid JSON (\(Self.reason(error)))")
        }
        guard case .object(let root) = document else {
            throw ConfigFileError(path: path, key: nil, problem: "must be a JSON object of settings")
        }
        let sectionNames = Set(ConfigSection.allCases.map(\.rawValue))
        var values: [String: JSONValue] = [:]
        var written: [String: String] = [:]
        for (key, value) in root.sorted(by: { $0.key < $1.key }) {
            if let other = ConfigSection(rawValue: key) {
                guard case .object(let entries) = value else {
                    throw ConfigFileError(path: path, key: key, problem: "must be an object of \(key) settings")
                }
                for (entryKey, entryValue) in entries.sorted(by: { $0.key < $1.key }) {
                    let qualified = "\(key).\(entryKey)"
                    try Self.check(entryValue, key: entryKey, written: qualified, allowed: other.keys, path: path)
                    if other == section {
                        values[entryKey] = entryValue
                        written[entryKey] = qualified
                    }
                }
            } else {
                if key == ConfigKey.database.name {
                    throw ConfigFileError(path: path, key: key,
                                          problem: "belongs in the \"run\" or \"bank\" object (each has its own database)")
                }
                try Self.check(value, key: key, written: key, allowed: ConfigKey.shared, path: path,
                               extraKnown: sectionNames.sorted())
                if values[key] == nil {
                    values[key] = value
                    written[key] = key
                }
            }
        }
        self.values = values
        self.written = written
        // Every `amqp-url` in the file, this command's or not: any of them is a password others may read.
        let levels = [root] + ConfigSection.allCases.compactMap { section -> [String: JSONValue]? in
            if case .object(let entries) = root[section.rawValue] { entries } else { nil }
        }
        ConfigFileExposure.loaded(path: path, amqpURLs: levels.compactMap { level -> String? in
            if case .string(let url) = level[ConfigKey.amqpURL.name] { url } else { nil }
        })
    }

    /// Where the key's value was written in the file (for messages), nil when it is not set.
    func origin(of key: ConfigKey) -> String? { written[key.name] }

    func string(_ key: ConfigKey) -> String? {
        if case .string(let text) = values[key.name] { return text }
        return nil
    }

    func integer(_ key: ConfigKey) -> Int? {
        if case .int(let number) = values[key.name] { return Int(number) }
        return nil
    }

    func number(_ key: ConfigKey) -> Double? {
        switch values[key.name] {
        case .int(let number): Double(number)
        case .double(let number): number
        default: nil
        }
    }

    func bool(_ key: ConfigKey) -> Bool? {
        if case .bool(let flag) = values[key.name] { return flag }
        return nil
    }

    /// An account list, as the comma-separated form the flag takes.
    func accounts(_ key: ConfigKey) -> String? {
        switch values[key.name] {
        case .string(let text): text
        case .array(let items): items.compactMap { if case .string(let name) = $0 { name } else { nil } }.joined(separator: ",")
        default: nil
        }
    }

    // MARK: Checking

    private static func check(_ value: JSONValue, key: String, written: String, allowed: [ConfigKey], path: String,
                              extraKnown: [String] = []) throws(ConfigFileError) {
        guard let known = allowed.first(where: { $0.name == key }) else {
            let names = (allowed.map(\.name) + extraKnown).sorted().joined(separator: ", ")
            throw ConfigFileError(path: path, key: written, problem: "is not a known setting (known here: \(names))")
        }
        if let expected = problem(with: value, kind: known.kind) {
            let found = known == .amqpURL ? describe(redacting: value) : describe(value)
            throw ConfigFileError(path: path, key: written, problem: "must be \(expected), found \(found)")
        }
    }

    /// What the value should have been, or nil when it is fine.
    private static func problem(with value: JSONValue, kind: ConfigKey.Kind) -> String? {
        switch (kind, value) {
        case (.string, .string(let text)): return text.isEmpty ? "a non-empty string" : nil
        case (.string, _): return "a non-empty string"
        case (.text, .string): return nil
        case (.text, _): return "a string"
        case (.logLevel, .string(let text)) where Logger.Level(rawValue: text.lowercased()) != nil: return nil
        case (.logLevel, _): return "one of \(LoggingOptions.levels)"
        case (.logFormat, .string(let text)) where LogFormat(rawValue: text.lowercased()) != nil: return nil
        case (.logFormat, _): return "one of \(LogFormat.names)"
        case (.integer(let range), .int(let number)) where range.contains(Int(clamping: number)): return nil
        case (.integer(let range), _):
            return range.upperBound == Int.max ? "an integer of at least \(range.lowerBound)"
                : "an integer from \(range.lowerBound) to \(range.upperBound)"
        case (.seconds, .int(let number)) where number > 0: return nil
        case (.seconds, .double(let number)) where number.isFinite && number > 0: return nil
        case (.seconds, _): return "a positive number of seconds"
        case (.bool, .bool): return nil
        case (.bool, _): return "true or false"
        case (.accounts, .string): return nil
        case (.accounts, .array(let items)) where items.allSatisfy({ if case .string = $0 { true } else { false } }):
            return nil
        case (.accounts, _): return "an array of account names or one comma-separated string"
        }
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): "\(flag)"
        case .int(let number): "\(number)"
        case .double(let number): "\(number)"
        case .string(let text): "\"\(text)\""
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Like `describe`, with the password of a URL hidden.
    private static func describe(redacting value: JSONValue) -> String {
        if case .string(let text) = value { return "\"\(AMQPConfiguration.redact(text))\"" }
        return describe(value)
    }

    private static func reason(_ error: any Error) -> String {
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
        return text ?? error.localizedDescription
    }
}
