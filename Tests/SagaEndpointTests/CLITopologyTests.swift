// Unit tests of the saga-endpoint executable's topology files (no broker).
//
// They need the test target to depend on the executable target: add "saga-endpoint" to the
// SagaEndpointTests dependencies in Package.swift and define SAGA_ENDPOINT_CLI_TESTS there
// (`swiftSettings: strictness + [.define("SAGA_ENDPOINT_CLI_TESTS")]`), or delete this guard.
// Without the dependency `@testable import saga_endpoint` cannot link, so they are compiled out.
#if SAGA_ENDPOINT_CLI_TESTS
import AMQPTransport
import Foundation
@testable import saga_endpoint
import Testing

@Suite struct CLITopologyTests {
    static let repoTopology = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("topology")

    func parse(_ json: String) throws -> Topology {
        try Topology.parse(Data(json.utf8), source: "test.json")
    }

    func withoutSources(_ topology: Topology) -> Topology {
        var copy = topology
        copy.sources = []
        return copy
    }

    @Test func repositoryTopologyMatchesTheBuiltInOne() throws {
        let loaded = try Topology.load(directory: Self.repoTopology)
        #expect(loaded.exchanges.map(\.name) == ["transfers.events", "payouts.events"])
        #expect(loaded.exchanges.allSatisfy { $0.kind == .topic && $0.durable && !$0.autoDelete && !$0.internal })
        #expect(Set(loaded.queues.map(\.name)) == ["transfers", "payouts", "bank", "transfers.error", "payouts.error", "bank.error"])
        #expect(loaded.bindings.map(\.routingKey) == ["TransferCompleted", "TransferFailed"])
        #expect(loaded.ignoredKeys.isEmpty)
        // The fallback for a binary run away from the repository declares the same.
        let builtIn = Topology.moneyTransfer
        #expect(Set(loaded.exchanges.map(\.name)) == Set(builtIn.exchanges.map(\.name)))
        #expect(Set(loaded.queues.map(\.name)) == Set(builtIn.queues.map(\.name)))
        #expect(Set(loaded.bindings) == Set(builtIn.bindings))
        for queue in builtIn.queues { #expect(loaded.queues.contains(queue)) }
        for exchange in builtIn.exchanges { #expect(loaded.exchanges.contains(exchange)) }
    }

    @Test func argumentsMapJSONTypesToFieldValues() throws {
        let topology = try parse("""
            {"queues": [{"name": "q", "arguments": {
                "x-queue-type": "quorum", "x-message-ttl": 60000, "x-single-active-consumer": true,
                "x-ratio": 0.5, "x-whole": 2.0, "x-negative": -3, "x-nested": {"a": 1, "b": [1, "two", false]}, "x-null": null}}]}
            """)
        let arguments = try #require(topology.queues.first).arguments
        #expect(arguments["x-queue-type"] == .string("quorum"))
        #expect(arguments["x-message-ttl"] == .int64(60000))
        #expect(arguments["x-single-active-consumer"] == .bool(true))
        #expect(arguments["x-ratio"] == .double(0.5))
        #expect(arguments["x-whole"] == .double(2))
        #expect(arguments["x-negative"] == .int64(-3))
        #expect(arguments["x-nested"] == .table(["a": .int64(1), "b": .array([.int64(1), .string("two"), .bool(false)])]))
        #expect(arguments["x-null"] == .void)
    }

    @Test func missingFieldsTakeRabbitMQsDefaults() throws {
        let topology = try parse("""
            {"exchanges": [{"name": "e", "type": "fanout"}], "queues": [{"name": "q"}],
             "bindings": [{"source": "e", "destination": "q"}]}
            """)
        #expect(topology.exchanges == [ExchangeDeclaration(name: "e", kind: .fanout, durable: true, autoDelete: false, internal: false)])
        #expect(topology.queues == [QueueDeclaration(name: "q", durable: true, autoDelete: false)])
        #expect(topology.bindings == [BindingDeclaration(source: "e", destination: "q", destinationKind: .queue, routingKey: "")])
    }

    @Test func exchangeToExchangeBindingsAndQueueTypeKey() throws {
        let topology = try parse("""
            {"queues": [{"name": "q", "type": "quorum"}, {"name": "c", "type": "classic"}],
             "bindings": [{"source": "a", "destination": "b", "destination_type": "exchange", "routing_key": "k.#"}]}
            """)
        #expect(topology.queues[0].arguments == ["x-queue-type": "quorum"])
        #expect(topology.queues[1].arguments.isEmpty)
        #expect(topology.bindings[0].destinationKind == .exchange)
        #expect(topology.bindings[0].routingKey == "k.#")
    }

    @Test func otherTopLevelKeysAreReportedNotApplied() throws {
        let topology = try parse("""
            {"rabbit_version": "3.10.8", "users": [], "policies": [], "queues": [{"name": "q"}]}
            """)
        #expect(topology.ignoredKeys == ["policies", "users"])
        #expect(topology.queues.count == 1)
    }

    @Test(arguments: [
        ("[1, 2]", "expected a JSON object"),
        ("{", "not valid JSON"),
        (#"{"queues": {}}"#, "'queues' must be an array"),
        (#"{"queues": [{"durable": true}]}"#, "queues[0]: missing 'name'"),
        (#"{"queues": [{"name": ""}]}"#, "queues[0]: 'name' must not be empty"),
        (#"{"queues": [{"name": "q", "durable": "yes"}]}"#, "'durable' must be true or false"),
        (#"{"queues": [{"name": "q", "arguments": []}]}"#, "'arguments' must be an object"),
        (#"{"exchanges": [{"name": "e"}]}"#, "exchanges[0]: missing 'type'"),
        (#"{"exchanges": [{"name": "", "type": "topic"}]}"#, "default exchange cannot be declared"),
        (#"{"bindings": [{"source": "", "destination": "q"}]}"#, "default exchange cannot be bound"),
        (#"{"bindings": [{"source": "e", "destination": "q", "destination_type": "topic"}]}"#, "'destination_type' must be"),
        (#"{"queues": [{"name": "q"}, {"name": "q", "durable": false}]}"#, "queue 'q' is defined twice, differently"),
    ])
    func invalidDefinitionsNameTheProblem(json: String, expected: String) throws {
        let error = try #require(throws: TopologyError.self) { try parse(json) }
        #expect(error.description.contains(expected), "\(error.description)")
        #expect(error.description.hasPrefix("test.json"))
    }

    @Test func mergingKeepsIdenticalEntriesOnceAndRejectsConflicts() throws {
        let a = try Topology.parse(Data(#"{"exchanges": [{"name": "e", "type": "topic"}], "queues": [{"name": "q"}], "bindings": [{"source": "e", "destination": "q", "routing_key": "k"}]}"#.utf8), source: "a.json")
        let b = try Topology.parse(Data(#"{"exchanges": [{"name": "e", "type": "topic"}], "queues": [{"name": "r"}], "bindings": [{"source": "e", "destination": "q", "routing_key": "k"}]}"#.utf8), source: "b.json")
        let merged = try a.merging(b)
        #expect(merged.exchanges.count == 1)
        #expect(merged.queues.map(\.name) == ["q", "r"])
        #expect(merged.bindings.count == 1)
        #expect(merged.sources == ["a.json", "b.json"])
        let c = try Topology.parse(Data(#"{"exchanges": [{"name": "e", "type": "direct"}]}"#.utf8), source: "c.json")
        let error = try #require(throws: TopologyError.self) { try merged.merging(c) }
        #expect(error.description.contains("a.json") && error.description.contains("c.json"))
    }

    @Test func exportIsMinimalDefinitionsThatParseBack() throws {
        let original = try parse("""
            {"exchanges": [{"name": "e", "vhost": "other", "type": "topic", "internal": true, "arguments": {"alternate-exchange": "ae"}}],
             "queues": [{"name": "q", "auto_delete": true, "arguments": {"x-max-length": 10, "x-overflow": "reject-publish"}}],
             "bindings": [{"source": "e", "destination": "q", "routing_key": "#"}]}
            """)
        let data = try original.exportJSON()
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["exchanges", "queues", "bindings"])
        for key in ["exchanges", "queues", "bindings"] {
            let entries = try #require(object[key] as? [[String: Any]])
            #expect(entries.count == 1)
            #expect(entries.allSatisfy { $0["vhost"] as? String == "/" })
        }
        let exchange = try #require((object["exchanges"] as? [[String: Any]])?.first)
        #expect(Set(exchange.keys) == ["name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"])
        let binding = try #require((object["bindings"] as? [[String: Any]])?.first)
        #expect(Set(binding.keys) == ["source", "vhost", "destination", "destination_type", "routing_key", "arguments"])
        #expect(withoutSources(try Topology.parse(data, source: "export")) == withoutSources(original))
    }

    @Test func exportOfTheRepositoryTopologyIsStable() throws {
        let topology = try Topology.load(directory: Self.repoTopology)
        #expect(try topology.exportJSON() == (try topology.exportJSON()))
        let reparsed = try Topology.parse(try topology.exportJSON(), source: "export")
        #expect(withoutSources(reparsed) == withoutSources(topology))
        // Empty arguments print as `{}` on one line, as `sagas`/`errors --pretty` print them; Foundation's
        // pretty printer wrote a bracket, a blank line and a bracket for every binding and queue.
        let text = String(decoding: try topology.exportJSON(), as: UTF8.self)
        #expect(text.contains("\"arguments\" : {}"))
        #expect(!text.split(separator: "\n", omittingEmptySubsequences: false).contains { $0.allSatisfy(\.isWhitespace) })
    }

    @Test func directoryLoadingReadsEveryJSONFileInNameOrder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cli-topology-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: TopologyError.self) { try Topology.load(directory: folder) }
        try Data(#"{"queues": [{"name": "second"}]}"#.utf8).write(to: folder.appendingPathComponent("b.json"))
        try Data(#"{"queues": [{"name": "first"}]}"#.utf8).write(to: folder.appendingPathComponent("a.json"))
        try Data("not json".utf8).write(to: folder.appendingPathComponent("notes.txt"))
        let topology = try Topology.load(directory: folder)
        #expect(topology.queues.map(\.name) == ["first", "second"])
        #expect(topology.sources.count == 2)

        // The current directory's topology folder wins; an explicit one must exist.
        let parent = folder.appendingPathComponent("cwd")
        try FileManager.default.createDirectory(at: parent.appendingPathComponent("topology"), withIntermediateDirectories: true)
        #expect(try Topology.directory(explicit: nil, currentDirectory: parent.path)?.lastPathComponent == "topology")
        #expect(try Topology.directory(explicit: folder.path)?.path == folder.path)
        #expect(throws: TopologyError.self) { try Topology.directory(explicit: folder.appendingPathComponent("nope").path) }
        // Elsewhere, the package's own folder is found from the executable's location.
        let found = try Topology.directory(explicit: nil, currentDirectory: folder.path, executablePath: nil)
        #expect(found?.standardizedFileURL.path == Self.repoTopology.standardizedFileURL.path)
    }
}
#endif
