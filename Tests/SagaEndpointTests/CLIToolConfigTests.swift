// The operator commands (`errors`, `topology`, `transfer`, `sagas`) take their broker URL and database from
// the same layers as `run`: flag, environment variable, config file (top level or `run` section), default.
#if SAGA_ENDPOINT_CLI_TESTS
import ArgumentParser
import Foundation
@testable import saga_endpoint
import Testing

@Suite struct CLIToolConfigTests {
    static let commands: [[String]] = [
        ["errors", "list"], ["errors", "show", "id-1"], ["errors", "replay", "--all"], ["errors", "purge"],
        ["topology", "declare"], ["topology", "verify"], ["topology", "export"], ["transfer", "--from", "a", "--to", "b", "--amount", "5"],
    ]

    func url(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let command = try #require(try SagaEndpointCLI.parseAsRoot(arguments) as? any BrokerCommand, "\(arguments)")
        return try command.brokerURL(environment: environment)
    }

    func database(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let command = try SagaEndpointCLI.parseAsRoot(["sagas"] + arguments)
        if let list = command as? SagasCommand.List {
            return try list.database.resolvedPath(config: list.config, environment: environment)
        }
        let show = try #require(command as? SagasCommand.Show)
        return try show.database.resolvedPath(config: show.config, environment: environment)
    }

    @Test(arguments: commands)
    func theBrokerURLComesFromFlagThenEnvironmentThenFileThenDefault(command: [String]) throws {
        let path = try CLIConfigFileTests().configFile(#"{"amqp-url": "amqp://file-host/"}"#)
        #expect(try url(command + ["--config", path]) == "amqp://file-host/")
        #expect(try url(command, environment: ["SAGA_CONFIG": path]) == "amqp://file-host/")
        #expect(try url(command + ["--config", path], environment: ["AMQP_URL": "amqp://env-host/"]) == "amqp://env-host/")
        #expect(try url(command + ["--config", path, "--amqp-url", "amqp://flag-host/"],
                        environment: ["AMQP_URL": "amqp://env-host/"]) == "amqp://flag-host/")
        #expect(try url(command) == AMQPOptions.defaultURL)
    }

    // Failed before: `topology declare|verify|export --config` ignored the file's `topology-dir`, so
    // `verify` said "ok" about other definitions than the ones `run` declared with the same file.
    @Test(arguments: [["topology", "declare"], ["topology", "verify"], ["topology", "export"]])
    func theTopologyFolderComesFromFlagThenFile(command: [String]) throws {
        let folders = try (0..<2).map { _ in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("topology-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            return folder.path
        }
        defer { for folder in folders { try? FileManager.default.removeItem(atPath: folder) } }
        func folder(_ arguments: [String]) throws -> String? {
            let parsed = try SagaEndpointCLI.parseAsRoot(command + arguments)
            switch parsed {
            case let declare as TopologyCommand.Declare:
                return try declare.topologyOptions.resolvedDirectory(config: declare.config, environment: [:])
            case let verify as TopologyCommand.Verify:
                return try verify.topologyOptions.resolvedDirectory(config: verify.config, environment: [:])
            case let export as TopologyCommand.Export:
                return try export.topologyOptions.resolvedDirectory(config: export.config, environment: [:])
            default:
                Issue.record("\(command) parsed as \(type(of: parsed))")
                return nil
            }
        }
        let top = try CLIConfigFileTests().configFile(#"{"topology-dir": "\#(folders[0])"}"#)
        let section = try CLIConfigFileTests().configFile(#"{"run": {"topology-dir": "\#(folders[0])"}}"#)
        #expect(try folder(["--config", top]) == folders[0])
        #expect(try folder(["--config", section]) == folders[0])
        #expect(try folder(["--config", top, "--topology-dir", folders[1]]) == folders[1])
        #expect(try folder([]) == nil)
    }

    // Failed before: every definition said vhost "/", so importing them put an endpoint's topology
    // for another vhost into the default one.
    @Test func topologyExportNamesTheBrokerURLsVhost() throws {
        func vhosts(_ arguments: [String], environment: [String: String] = [:]) throws -> Set<String> {
            let export = try #require(try SagaEndpointCLI.parseAsRoot(["topology", "export"] + arguments) as? TopologyCommand.Export)
            let json = try JSONSerialization.jsonObject(with: try export.definitions(environment: environment)) as? [String: Any]
            let items = ["exchanges", "queues", "bindings"].flatMap { json?[$0] as? [[String: Any]] ?? [] }
            #expect(!items.isEmpty)
            return Set(items.compactMap { $0["vhost"] as? String })
        }
        #expect(try vhosts([]) == ["/"])
        #expect(try vhosts(["--amqp-url", "amqp://h/payments"]) == ["payments"])
        #expect(try vhosts([], environment: ["AMQP_URL": "amqp://h/a%2Fb"]) == ["a/b"])
        let path = try CLIConfigFileTests().configFile(#"{"amqp-url": "amqp://file-host/orders"}"#)
        #expect(try vhosts(["--config", path]) == ["orders"])
    }

    @Test func theRunSectionWinsOverTheTopLevel() throws {
        let path = try CLIConfigFileTests().configFile(#"{"amqp-url": "amqp://top/", "run": {"amqp-url": "amqp://run-section/"}}"#)
        #expect(try url(["errors", "list", "--config", path]) == "amqp://run-section/")
    }

    @Test func sagasReadsRunsDatabaseFromTheFile() throws {
        let path = try CLIConfigFileTests().configFile(#"{"run": {"database": "run.sqlite"}, "bank": {"database": "bank.sqlite"}}"#)
        #expect(try database(["list", "--config", path]) == "run.sqlite")
        #expect(try database(["show", "TransferSaga", "t-1", "--config", path]) == "run.sqlite")
        #expect(try database(["list", "--config", path], environment: ["SAGA_DATABASE": "env.sqlite"]) == "env.sqlite")
        #expect(try database(["list", "--config", path, "--database", "flag.sqlite"]) == "flag.sqlite")
        #expect(try database(["list"]) == DatabaseOptions.defaultPath)
    }

    // Before, `sagas list` printed nothing and exited 0 for a mistyped path, as if there were no sagas.
    @Test func sagasRefusesADatabaseThatDoesNotExist() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("missing-\(UUID().uuidString).sqlite").path
        do {
            _ = try SagaDatabase.open(path)
            Issue.record("a missing database was opened")
        } catch let error as CLIError {
            #expect(error.description.contains("no saga database at \(path)"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: path), "never created by an inspection")
    }

    // Before, the demo's children inherited the operator's SAGA_CONFIG and HTTP_PORT: both bound one port
    // (one exited, the demo failed), and a config's bank fees changed the demo's outcomes.
    @Test func demoChildrenDoNotInheritTheOperatorsSettings() {
        let parent = ["PATH": "/usr/bin", "SAGA_CONFIG": "/etc/saga.json", "HTTP_PORT": "9100",
                      "SAGA_DATABASE": "/var/lib/saga.sqlite", "BANK_DATABASE": "/var/lib/bank.sqlite",
                      "AMQP_URL": "amqp://operator/"]
        let child = ChildSupervisor.childEnvironment(parent: parent, adding: ["AMQP_URL": "amqp://demo/"])
        #expect(child == ["PATH": "/usr/bin", "AMQP_URL": "amqp://demo/"])
    }

    @Test func aBadFileOrURLIsAnErrorNamingItsSource() throws {
        let typo = try CLIConfigFileTests().configFile(#"{"amqp-ulr": "amqp://x/"}"#)
        #expect(throws: ConfigFileError.self) { try url(["errors", "list", "--config", typo]) }
        let invalid = try CLIConfigFileTests().configFile(#"{"amqp-url": "http://user:secret@host/"}"#)
        do {
            _ = try url(["topology", "declare", "--config", invalid])
            Issue.record("an http URL was accepted")
        } catch {
            let message = SagaEndpointCLI.message(for: error)
            #expect(message.contains("'amqp-url' in config file \(invalid)") && !message.contains("secret"), "\(message)")
        }
    }
}
#endif
