import ArgumentParser
import Foundation
import MoneyTransfer
import SagaStore

/// `sagas list|show|resend`: the live sagas in an endpoint's database.
struct SagasCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sagas",
        abstract: "Inspect the live sagas in an endpoint's SQLite database; resend a transfer's bank command.",
        subcommands: [List.self, Show.self, Resend.self]
    )

    struct List: ParsableCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "Print one JSON object per live saga per line (nothing when there are none; exit 1 when the database does not exist).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @Option(name: .customLong("type"), help: ArgumentHelp("Only sagas of this type (e.g. TransferSaga).", valueName: "type"))
        var sagaType: String?

        func run() throws {
            _ = try bootstrapLogging()
            let path = try database.resolvedPath(config: config)
            let store = try SagaDatabase.open(path)
            defer { store.close() }
            let records = try store.listSagas(type: sagaType)
            for record in records {
                printLine(try SagaDatabase.json(SagaDatabase.object(record), pretty: false))
            }
            // Stdout stays empty (nothing live of that type), but a mistyped type must not pass for that.
            if records.isEmpty, let sagaType, let note = try SagaDatabase.unknownTypeNote(sagaType, store) {
                printError("note: in \(path): \(note)")
            }
            if records.isEmpty, let note = try SagaDatabase.otherEndpointNote(path, store) { printError("note: \(note)") }
        }
    }

    struct Show: ParsableCommand, OperatorLogging {
        static let configuration = CommandConfiguration(
            abstract: "Print one saga, with its pending timeouts, as a JSON object (exit 1 when not found).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var config: ConfigOptions
        @OptionGroup var logging: LoggingOptions
        @Argument(help: "The saga type, e.g. TransferSaga.") var type: String
        @Argument(help: "The correlation id, e.g. a transfer id.") var id: String

        func run() throws {
            _ = try bootstrapLogging()
            let path = try database.resolvedPath(config: config)
            let store = try SagaDatabase.open(path)
            defer { store.close() }
            guard let record = try store.loadSaga(type: type, correlationId: id) else {
                if let note = try SagaDatabase.otherEndpointNote(path, store) { printError("note: \(note)") }
                throw notFound(path, typeNote: try SagaDatabase.unknownTypeNote(type, store))
            }
            var object = SagaDatabase.object(record)
            object["pendingTimeouts"] = try store.pendingTimeouts(sagaType: type, correlationId: id).map(SagaDatabase.object)
            printLine(try SagaDatabase.json(object, pretty: true))
        }

        private func notFound(_ path: String, typeNote: String?) -> ExitCode {
            printError("no live saga \(type) with correlation id '\(id)' in \(path)" + (typeNote.map { "; " + $0 } ?? ""))
            return ExitCode.failure
        }
    }
}

/// Reading saga records as JSON.
enum SagaDatabase {
    /// Opens the store; a file that does not exist is an error, never created here (a mistyped path must
    /// not look like an endpoint without live sagas).
    static func open(_ path: String) throws -> SagaStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CLIError("no saga database at \(path) (the endpoint creates it when it first runs; check --database, SAGA_DATABASE or the config file)")
        }
        let foreign: [String]
        do {
            foreign = try SagaStore.foreignTables(inFileAt: path)
        } catch {
            throw CLIError("cannot open the saga database \(path): \(error)")
        }
        // Refused before the store opens it: its advice for an old schema is to start the endpoint, which
        // would put the store's tables in another application's file.
        guard foreign.isEmpty else {
            throw CLIError("\(path) is not a saga database: it holds tables of another application "
                + "(\(foreign.joined(separator: ", "))); check --database, SAGA_DATABASE or the config file")
        }
        do {
            // Never migrates: an older endpoint may still be running on the file. Nor switches it to WAL:
            // this command only looks (an endpoint's file is in WAL mode already).
            return try SagaStore(path: path, options: SagaStore.Options(switchesToWAL: false), migrate: false)
        } catch {
            throw CLIError("cannot open the saga database \(path): \(error)")
        }
    }

    /// When the file is the store of another endpoint than `run`'s (`bank.sqlite`, which hosts no sagas),
    /// says so: listing nothing, exit 0, it passed for "no transfer in flight".
    static func otherEndpointNote(_ path: String, _ store: SagaStore) throws -> String? {
        guard let owner = try store.owner(), owner != MoneyTransferApp.transfersQueue else { return nil }
        return "\(path) is the store of endpoint '\(owner)', not of `run` (endpoint '\(MoneyTransferApp.transfersQueue)'): "
            + "check --database, SAGA_DATABASE or the config file"
    }

    /// When no saga of `sagaType` is live at all, says so with the types that are: a mistyped saga type
    /// (`OrderFulfillment` for `OrderFulfilment`) listed nothing, exit 0, as if none were live.
    static func unknownTypeNote(_ sagaType: String, _ store: SagaStore) throws -> String? {
        let counts = try store.sagaCounts()
        guard counts[sagaType] == nil else { return nil }
        let live = counts.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }
        return "no saga of type '\(sagaType)' is live"
            + (live.isEmpty ? " (no saga is)" : "; the types with live sagas: " + live.joined(separator: ", "))
    }

    static func object(_ record: SagaRecord) -> [String: Any] {
        var originator: Any = NSNull()
        if record.originatorReplyTo != nil || record.originatorCorrelationId != nil {
            originator = ["replyTo": record.originatorReplyTo ?? NSNull(),
                          "correlationId": record.originatorCorrelationId ?? NSNull()] as [String: Any]
        }
        return [
            "sagaType": record.sagaType, "correlationId": record.correlationId, "sagaId": record.sagaId,
            "version": record.version, "createdAt": timestamp(record.createdAt), "updatedAt": timestamp(record.updatedAt),
            "state": embedded(record.state), "originator": originator,
        ]
    }

    static func object(_ timeout: TimeoutRecord) -> [String: Any] {
        [
            "timeoutId": timeout.timeoutId, "dueAt": timestamp(timeout.dueAt), "messageType": timeout.messageType,
            "body": embedded(timeout.body), "headers": timeout.headers, "createdAt": timestamp(timeout.createdAt),
        ]
    }

    /// JSON bytes as a nested JSON value; anything else as a string.
    static func embedded(_ data: Data) -> Any {
        if let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) { return value }
        return String(decoding: data, as: UTF8.self)
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func json(_ object: [String: Any], pretty: Bool) throws -> String {
        try JSONText.render(object, pretty: pretty)
    }
}
