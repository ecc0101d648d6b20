import AMQPTransport
import Foundation
import SagaEndpoint

// RabbitMQ definitions files (the format of `rabbitmqctl export_definitions` / the management UI):
// only the keys `exchanges`, `queues` and `bindings` are used; `vhost` entries are ignored (everything is
// declared in the vhost of the AMQP URL); other top-level keys (users, policies, …) are reported and
// skipped. Argument values map JSON strings → .string, integers → .int64, booleans → .bool, other
// numbers → .double, objects → .table, arrays → .array, null → .void.

/// Exchanges, queues and bindings to declare, in declaration order.
struct Topology: Equatable, Sendable {
    var exchanges: [ExchangeDeclaration] = []
    var queues: [QueueDeclaration] = []
    var bindings: [BindingDeclaration] = []
    /// Top-level keys of the files that are not exchanges/queues/bindings (and not informational).
    var ignoredKeys: [String] = []
    /// Where the definitions came from (file paths, or "built-in"), for messages.
    var sources: [String] = []

    var isEmpty: Bool { exchanges.isEmpty && queues.isEmpty && bindings.isEmpty }

    /// What an endpoint declares at start and again whenever one of its connections recovers.
    var endpointTopology: EndpointTopology {
        EndpointTopology(exchanges: exchanges, queues: queues, bindings: bindings)
    }
}

struct TopologyError: Error, CustomStringConvertible, Equatable {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: JSON values

/// A JSON value that keeps integers apart from other numbers (for argument tables).
enum JSONValue: Encodable, Equatable, Sendable {
    case null, bool(Bool), int(Int64), double(Double), string(String)
    case array([JSONValue]), object([String: JSONValue])

    /// Parses a JSON document. Numbers written with a fraction or exponent (`2.0`, `1e3`) are doubles,
    /// others integers (JSONDecoder would turn `2.0` into an integer, hence JSONSerialization).
    static func parse(_ data: Data) throws -> JSONValue {
        try JSONValue(foundation: JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]))
    }

    private init(foundation value: Any) throws {
        switch value {
        case is NSNull:
            self = .null
        case let number as NSNumber:
            switch String(cString: number.objCType) {
            case "c", "B": self = .bool(number.boolValue)
            case "d", "f": self = .double(number.doubleValue)
            case "Q" where number.uint64Value > UInt64(Int64.max): self = .double(number.doubleValue)
            default: self = .int(number.int64Value)
            }
        case let string as String:
            self = .string(string)
        case let array as [Any]:
            self = .array(try array.map { try JSONValue(foundation: $0) })
        case let object as [String: Any]:
            self = .object(try object.mapValues { try JSONValue(foundation: $0) })
        default:
            throw TopologyError("unsupported JSON value \(value)")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    var fieldValue: FieldValue {
        switch self {
        case .null: .void
        case .bool(let value): .bool(value)
        case .int(let value): .int64(value)
        case .double(let value): .double(value)
        case .string(let value): .string(value)
        case .array(let values): .array(values.map(\.fieldValue))
        case .object(let table): .table(table.mapValues(\.fieldValue))
        }
    }

    init(_ value: FieldValue) {
        switch value {
        case .bool(let v): self = .bool(v)
        case .int8(let v): self = .int(Int64(v))
        case .uint8(let v): self = .int(Int64(v))
        case .int16(let v): self = .int(Int64(v))
        case .uint16(let v): self = .int(Int64(v))
        case .int32(let v): self = .int(Int64(v))
        case .uint32(let v): self = .int(Int64(v))
        case .int64(let v): self = .int(v)
        case .uint64(let v): self = Int64(exactly: v).map { .int($0) } ?? .double(Double(v))
        case .timestamp(let v): self = Int64(exactly: v).map { .int($0) } ?? .double(Double(v))
        case .float(let v): self = .double(Double(v))
        case .double(let v): self = .double(v)
        case .decimal(let scale, let v): self = .double(Double(v) / pow(10, Double(scale)))
        case .string(let v): self = .string(v)
        case .bytes(let v): self = .string(String(data: v, encoding: .utf8) ?? v.base64EncodedString())
        case .table(let t): self = .object(t.mapValues(JSONValue.init))
        case .array(let a): self = .array(a.map(JSONValue.init))
        case .void: self = .null
        }
    }
}

// MARK: Parsing

extension Topology {
    /// Keys of an exported definitions file that carry no declarations and are skipped silently.
    static let informationalKeys: Set<String> = ["rabbit_version", "rabbitmq_version", "product_name", "product_version"]

    /// Parses one definitions document. `source` names it in error messages.
    static func parse(_ data: Data, source: String) throws -> Topology {
        let root: JSONValue
        do {
            root = try JSONValue.parse(data)
        } catch {
            throw TopologyError("\(source): not valid JSON (\(error.localizedDescription))")
        }
        guard case .object(let document) = root else { throw TopologyError("\(source): expected a JSON object at the top level") }
        var topology = Topology(sources: [source])
        topology.ignoredKeys = document.keys.filter {
            !["exchanges", "queues", "bindings"].contains($0) && !informationalKeys.contains($0)
        }.sorted()
        for (index, entry) in try list(document, "exchanges", source).enumerated() {
            let item = Item(entry, "\(source): exchanges[\(index)]")
            let name = try item.string("name")
            let type = try item.string("type")
            guard !name.isEmpty else { throw TopologyError("\(item.context): 'name' must not be empty (the default exchange cannot be declared)") }
            guard !type.isEmpty else { throw TopologyError("\(item.context): 'type' must not be empty") }
            topology.exchanges.append(ExchangeDeclaration(
                name: name, kind: .init(rawValue: type), durable: try item.bool("durable", default: true),
                autoDelete: try item.bool("auto_delete", default: false), internal: try item.bool("internal", default: false),
                arguments: try item.arguments()))
        }
        for (index, entry) in try list(document, "queues", source).enumerated() {
            let item = Item(entry, "\(source): queues[\(index)]")
            let name = try item.string("name")
            guard !name.isEmpty else { throw TopologyError("\(item.context): 'name' must not be empty") }
            var arguments = try item.arguments()
            // Newer exports carry the queue type as a key of its own; declare it as the argument.
            if let type = try item.optionalString("type"), type != "classic", arguments["x-queue-type"] == nil {
                arguments["x-queue-type"] = .string(type)
            }
            topology.queues.append(QueueDeclaration(
                name: name, durable: try item.bool("durable", default: true),
                autoDelete: try item.bool("auto_delete", default: false), arguments: arguments))
        }
        for (index, entry) in try list(document, "bindings", source).enumerated() {
            let item = Item(entry, "\(source): bindings[\(index)]")
            let source = try item.string("source")
            let destination = try item.string("destination")
            guard !source.isEmpty else { throw TopologyError("\(item.context): 'source' must not be empty (the default exchange cannot be bound)") }
            guard !destination.isEmpty else { throw TopologyError("\(item.context): 'destination' must not be empty") }
            let kindText = try item.optionalString("destination_type") ?? "queue"
            guard let kind = BindingDeclaration.DestinationKind(rawValue: kindText) else {
                throw TopologyError("\(item.context): 'destination_type' must be \"queue\" or \"exchange\", not \"\(kindText)\"")
            }
            topology.bindings.append(BindingDeclaration(
                source: source, destination: destination, destinationKind: kind,
                routingKey: try item.optionalString("routing_key") ?? "", arguments: try item.arguments()))
        }
        // Entries repeated within the file: identical ones once, different ones are an error.
        return try Topology(ignoredKeys: topology.ignoredKeys, sources: topology.sources).merging(topology)
    }

    private static func list(_ document: [String: JSONValue], _ key: String, _ source: String) throws -> [JSONValue] {
        switch document[key] {
        case nil, .null: return []
        case .array(let entries): return entries
        default: throw TopologyError("\(source): '\(key)' must be an array")
        }
    }

    /// One entry of a list, with its location for error messages.
    private struct Item {
        var fields: [String: JSONValue]?
        var context: String

        init(_ value: JSONValue, _ context: String) {
            if case .object(let fields) = value { self.fields = fields }
            self.context = context
        }

        private func object() throws -> [String: JSONValue] {
            guard let fields else { throw TopologyError("\(context): expected an object") }
            return fields
        }

        func string(_ key: String) throws -> String {
            guard let value = try optionalString(key) else { throw TopologyError("\(context): missing '\(key)'") }
            return value
        }

        func optionalString(_ key: String) throws -> String? {
            switch try object()[key] {
            case nil, .null: return nil
            case .string(let value): return value
            default: throw TopologyError("\(context): '\(key)' must be a string")
            }
        }

        func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
            switch try object()[key] {
            case nil, .null: return defaultValue
            case .bool(let value): return value
            default: throw TopologyError("\(context): '\(key)' must be true or false")
            }
        }

        func arguments() throws -> FieldTable {
            switch try object()["arguments"] {
            case nil, .null: return [:]
            case .object(let table): return table.mapValues(\.fieldValue)
            default: throw TopologyError("\(context): 'arguments' must be an object")
            }
        }
    }

    /// Combines two topologies: identical entries once, the same exchange or queue defined differently is
    /// an error naming both sources.
    func merging(_ other: Topology) throws -> Topology {
        var merged = self
        let otherSource = other.sources.joined(separator: ", ")
        for exchange in other.exchanges {
            if let existing = merged.exchanges.first(where: { $0.name == exchange.name }) {
                guard existing == exchange else {
                    throw conflict("exchange '\(exchange.name)'", otherSource)
                }
            } else {
                merged.exchanges.append(exchange)
            }
        }
        for queue in other.queues {
            if let existing = merged.queues.first(where: { $0.name == queue.name }) {
                guard existing == queue else {
                    throw conflict("queue '\(queue.name)'", otherSource)
                }
            } else {
                merged.queues.append(queue)
            }
        }
        for binding in other.bindings where !merged.bindings.contains(binding) {
            merged.bindings.append(binding)
        }
        merged.ignoredKeys = Array(Set(merged.ignoredKeys).union(other.ignoredKeys)).sorted()
        merged.sources += other.sources.filter { !merged.sources.contains($0) }
        return merged
    }

    private func conflict(_ what: String, _ otherSource: String) -> TopologyError {
        let sourceList = sources.joined(separator: ", ")
        return sourceList == otherSource
            ? TopologyError("\(otherSource): \(what) is defined twice, differently")
            : TopologyError("\(what) is defined differently in \(sourceList) and \(otherSource)")
    }

    /// Reads every `*.json` file of `directory`, in name order, and merges them.
    static func load(directory: URL) throws -> Topology {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw TopologyError("cannot read the topology directory \(directory.path): \(error.localizedDescription)")
        }
        let files = names.filter { $0.hasSuffix(".json") }.sorted()
        guard !files.isEmpty else { throw TopologyError("no *.json definitions in \(directory.path)") }
        var topology = Topology()
        for name in files {
            let url = directory.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw TopologyError("cannot read \(url.path)")
            }
            topology = try topology.merging(parse(data, source: url.path))
        }
        return topology
    }
}

// MARK: Export

extension Topology {
    private struct Definitions: Encodable {
        var exchanges: [Exchange]
        var queues: [Queue]
        var bindings: [Binding]
    }

    private struct Exchange: Encodable {
        var name: String, vhost: String, type: String, durable: Bool, auto_delete: Bool, `internal`: Bool
        var arguments: [String: JSONValue]
    }

    private struct Queue: Encodable {
        var name: String, vhost: String, durable: Bool, auto_delete: Bool
        var arguments: [String: JSONValue]
    }

    private struct Binding: Encodable {
        var source: String, vhost: String, destination: String, destination_type: String, routing_key: String
        var arguments: [String: JSONValue]
    }

    /// One minimal definitions document (exchanges, queues, bindings, each in vhost "/") that
    /// `rabbitmqctl import_definitions` accepts. Pretty-printed with sorted keys, so it is stable.
    /// The definitions in `vhost` (`rabbitmqctl import_definitions` creates them where they say).
    func exportJSON(vhost: String = "/") throws -> Data {
        let definitions = Definitions(
            exchanges: exchanges.map {
                Exchange(name: $0.name, vhost: vhost, type: $0.kind.rawValue, durable: $0.durable, auto_delete: $0.autoDelete,
                         internal: $0.internal, arguments: $0.arguments.mapValues(JSONValue.init))
            },
            queues: queues.map {
                Queue(name: $0.name, vhost: vhost, durable: $0.durable, auto_delete: $0.autoDelete,
                      arguments: $0.arguments.mapValues(JSONValue.init))
            },
            bindings: bindings.map {
                Binding(source: $0.source, vhost: vhost, destination: $0.destination, destination_type: $0.destinationKind.rawValue,
                        routing_key: $0.routingKey, arguments: $0.arguments.mapValues(JSONValue.init))
            })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let text = String(decoding: try encoder.encode(definitions), as: UTF8.self)
        return Data(JSONText.compactingEmptyContainers(text).utf8)
    }
}
