// Unit tests of the config file layer of `run` and `bank`: flags over environment variables over the
// file over the defaults, and clear errors for a bad file (no broker). The environment is passed to
// `settings(environment:)`, so the tests never change the process's environment and run in parallel.
#if SAGA_ENDPOINT_CLI_TESTS
import ArgumentParser
import Foundation
import Logging
@testable import saga_endpoint
import Testing

@Suite struct CLIConfigFileTests {
    /// Writes `json` to a fresh file and returns its path.
    func configFile(_ json: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("saga-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("saga.json")
        try Data(json.utf8).write(to: file)
        return file.path
    }

    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> RunSettings {
        let command = try #require(try SagaEndpointCLI.parseAsRoot(["run"] + arguments) as? RunCommand)
        return try command.settings(environment: environment)
    }

    func bank(_ arguments: [String], environment: [String: String] = [:]) throws -> BankSettings {
        let command = try #require(try SagaEndpointCLI.parseAsRoot(["bank"] + arguments) as? BankCommand)
        return try command.settings(environment: environment)
    }

    /// The error message of resolving `run`'s settings, nil when it succeeds.
    func runError(_ arguments: [String], environment: [String: String] = [:]) -> String? {
        do {
            let command = try SagaEndpointCLI.parseAsRoot(["run"] + arguments)
            _ = try (command as? RunCommand)?.settings(environment: environment)
            return nil
        } catch {
            return SagaEndpointCLI.message(for: error)
        }
    }

    static let everySetting = """
        {
          "amqp-url": "amqp://file:secret@file-host:5673/file",
          "log-level": "warning",
          "log-format": "json",
          "prefetch": 50,
          "batch-size": 20,
          "http-port": 9500,
          "http-host": "0.0.0.0",
          "topology-dir": "/tmp",
          "declare-topology": false,
          "run": { "database": "run-file.sqlite", "bank-timeout": 2.5, "prefetch": 60 },
          "bank": {
            "database": "bank-file.sqlite", "debit-fee": 1, "credit-fee": 2, "refund-fee": 3,
            "closed-accounts": ["c1", "c2"], "underfunded-accounts": "u1, u2",
            "closed-prefix": "", "underfunded-prefix": "broke-", "http-port": 9501
          }
        }
        """

    @Test func withoutFlagsOrEnvironmentTheDefaultsApply() throws {
        let settings = try run([])
        #expect(settings.endpoint == EndpointSettings.defaults(database: "saga.sqlite"))
        #expect(settings.bankTimeout == 10)
        let bank = try bank([])
        #expect(bank.endpoint == EndpointSettings.defaults(database: "bank.sqlite"))
        #expect(bank.simulator.debitFee == 25 && bank.simulator.closedAccountPrefix == "closed-")
    }

    @Test func everyRunAndBankSettingCanComeFromTheFile() throws {
        let path = try configFile(Self.everySetting)
        let run = try run(["--config", path])
        #expect(run.endpoint == EndpointSettings(
            amqpURL: "amqp://file:secret@file-host:5673/file", databasePath: "run-file.sqlite", logLevel: .warning,
            logFormat: .json, prefetch: 60, batchSize: 20, declareTopology: false, httpPort: 9500, httpHost: "0.0.0.0",
            topologyDirectory: "/tmp"))
        #expect(run.bankTimeout == 2.5)

        let bank = try bank(["--config", path])
        #expect(bank.endpoint.databasePath == "bank-file.sqlite" && bank.endpoint.prefetch == 50)
        #expect(bank.endpoint.httpPort == 9501 && bank.endpoint.logLevel == .warning)
        let simulator = bank.simulator
        #expect(simulator.debitFee == 1 && simulator.creditFee == 2 && simulator.refundFee == 3)
        #expect(simulator.closedAccounts == ["c1", "c2"] && simulator.underfundedAccounts == ["u1", "u2"])
        #expect(simulator.closedAccountPrefix == nil && simulator.underfundedAccountPrefix == "broke-")
    }

    @Test func theFileCanBeNamedByTheEnvironment() throws {
        let path = try configFile(#"{"run": {"bank-timeout": 4}}"#)
        #expect(try run([], environment: ["SAGA_CONFIG": path]).bankTimeout == 4)
        // The flag names another file: the variable's is not read.
        let other = try configFile(#"{"run": {"bank-timeout": 6}}"#)
        #expect(try run(["--config", other], environment: ["SAGA_CONFIG": path]).bankTimeout == 6)
    }

    @Test func flagsWinOverEnvironmentWhichWinsOverTheFileWhichWinsOverDefaults() throws {
        let path = try configFile(#"""
            {"amqp-url": "amqp://file-host/", "log-level": "error", "http-port": 9000,
             "run": {"database": "file.sqlite", "prefetch": 7}}
            """#)
        let environment = ["AMQP_URL": "amqp://env-host/", "SAGA_DATABASE": "env.sqlite", "HTTP_PORT": "9100"]

        // File over defaults: prefetch and log level have no variable set; batch size is in no layer.
        let fromEnvironment = try run(["--config", path], environment: environment).endpoint
        #expect(fromEnvironment.prefetch == 7 && fromEnvironment.logLevel == .error)
        #expect(fromEnvironment.batchSize == EndpointOptions.defaultBatchSize)
        // Environment over file.
        #expect(fromEnvironment.amqpURL == "amqp://env-host/" && fromEnvironment.databasePath == "env.sqlite")
        #expect(fromEnvironment.httpPort == 9100)

        // Flags over environment and file.
        let fromFlags = try run(["--config", path, "--amqp-url", "amqp://flag-host/", "--database", "flag.sqlite",
                                 "--http-port", "9200", "--prefetch", "3", "--log-level", "debug"],
                                environment: environment).endpoint
        #expect(fromFlags.amqpURL == "amqp://flag-host/" && fromFlags.databasePath == "flag.sqlite")
        #expect(fromFlags.httpPort == 9200 && fromFlags.prefetch == 3 && fromFlags.logLevel == .debug)

        // Without the variables the file's values are used.
        let fromFile = try run(["--config", path]).endpoint
        #expect(fromFile.amqpURL == "amqp://file-host/" && fromFile.databasePath == "file.sqlite" && fromFile.httpPort == 9000)
    }

    @Test func aCommandsSectionWinsOverTheTopLevel() throws {
        let path = try configFile(#"{"prefetch": 5, "http-port": 1, "bank": {"prefetch": 6}, "run": {"http-port": 2}}"#)
        #expect(try run(["--config", path]).endpoint.prefetch == 5)
        #expect(try run(["--config", path]).endpoint.httpPort == 2)
        #expect(try bank(["--config", path]).endpoint.prefetch == 6)
        #expect(try bank(["--config", path]).endpoint.httpPort == 1)
    }

    @Test func theBankDatabaseFollowsItsOwnVariable() throws {
        let path = try configFile(#"{"bank": {"database": "file-bank.sqlite"}, "run": {"database": "file-run.sqlite"}}"#)
        #expect(try bank(["--config", path], environment: ["SAGA_DATABASE": "x.sqlite"]).endpoint.databasePath == "file-bank.sqlite")
        #expect(try bank(["--config", path], environment: ["BANK_DATABASE": "env-bank.sqlite"]).endpoint.databasePath == "env-bank.sqlite")
    }

    @Test(arguments: [
        (#"{"run": {"prefetch": "many"}}"#, #"'run.prefetch' must be an integer from 1 to 65535, found "many""#),
        (#"{"prefetch": 0}"#, "'prefetch' must be an integer from 1 to 65535, found 0"),
        (#"{"batch-size": 2.5}"#, "'batch-size' must be an integer from 1 to 1000000, found 2.5"),
        (#"{"http-port": 70000}"#, "'http-port' must be an integer from 0 to 65535, found 70000"),
        (#"{"log-level": "loud"}"#, "'log-level' must be one of trace|debug|info|notice|warning|error|critical"),
        (#"{"declare-topology": "yes"}"#, #"'declare-topology' must be true or false, found "yes""#),
        (#"{"run": {"bank-timeout": -1}}"#, "'run.bank-timeout' must be a positive number of seconds, found -1"),
        (#"{"bank": {"debit-fee": -5}}"#, "'bank.debit-fee' must be an integer of at least 0, found -5"),
        (#"{"bank": {"closed-accounts": [1, 2]}}"#, "'bank.closed-accounts' must be an array of account names"),
        (#"{"prefech": 10}"#, "'prefech' is not a known setting (known here: amqp-url, bank, batch-size,"),
        (#"{"run": {"debit-fee": 10}}"#, "'run.debit-fee' is not a known setting"),
        (#"{"database": "x.sqlite"}"#, #"'database' belongs in the "run" or "bank" object"#),
        (#"{"run": 5}"#, "'run' must be an object of run settings"),
        (#"[1, 2]"#, "must be a JSON object of settings"),
        (#"{"prefetch" 10}"#, "is not valid JSON"),
    ])
    func invalidFileValuesStopTheCommandNamingFileKeyAndExpectedType(json: String, expected: String) throws {
        let path = try configFile(json)
        let message = try #require(runError(["--config", path]), "accepted \(json)")
        #expect(message.contains("config file \(path): "), "\(message)")
        #expect(message.contains(expected), "\(message)")
    }

    @Test func aTypoInTheOtherCommandsSectionIsAnErrorToo() throws {
        let path = try configFile(#"{"bank": {"debitfee": 1}}"#)
        let message = try #require(runError(["--config", path]))
        #expect(message.contains("'bank.debitfee' is not a known setting"), "\(message)")
    }

    @Test func aMissingFileIsAnErrorNamingIt() throws {
        let path = "/nonexistent/\(UUID().uuidString).json"
        #expect(runError(["--config", path])?.contains("config file \(path): does not exist") == true)
        #expect(runError([], environment: ["SAGA_CONFIG": path])?.contains("config file \(path): does not exist") == true)
    }

    @Test func anInvalidURLInTheFileIsReportedWithoutItsPassword() throws {
        let path = try configFile(#"{"amqp-url": "http://user:secret@host/"}"#)
        let message = try #require(runError(["--config", path]))
        #expect(message.contains("'amqp-url' in config file \(path)") && !message.contains("secret"), "\(message)")
        let wrongType = try configFile(#"{"amqp-url": 5}"#)
        #expect(runError(["--config", wrongType])?.contains("'amqp-url' must be a non-empty string, found 5") == true)
    }

    @Test func aBadEnvironmentValueIsNamedEvenWithAFile() throws {
        let path = try configFile(#"{"http-port": 9000}"#)
        let message = try #require(runError(["--config", path], environment: ["HTTP_PORT": "eighty"]))
        #expect(message.contains("invalid HTTP_PORT 'eighty'"), "\(message)")
    }

    @Test func theReadmesExampleFileIsValid() throws {
        var root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```json\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        let example = try #require(blocks.first { $0.contains("\"bank-timeout\"") }, "no example config file in README.md")
        let path = try configFile(example)
        let run = try run(["--config", path])
        #expect(run.bankTimeout == 30 && run.endpoint.httpPort == 9464 && run.endpoint.prefetch == 300)
        let bank = try bank(["--config", path])
        #expect(bank.endpoint.httpPort == 9465 && bank.simulator.closedAccounts == ["acct-9"])
    }

    @Test func aTopologyFolderFromTheFileMustExist() throws {
        let path = try configFile(#"{"topology-dir": "/nonexistent/topology"}"#)
        let message = try #require(runError(["--config", path]))
        #expect(message.contains("'topology-dir' in config file \(path) names /nonexistent/topology, which is not a directory"), "\(message)")
    }
}

extension EndpointSettings {
    /// The settings of a command given nothing at all.
    static func defaults(database: String) -> EndpointSettings {
        EndpointSettings(amqpURL: AMQPOptions.defaultURL, databasePath: database, logLevel: .info, logFormat: .text, prefetch: 400,
                         batchSize: 100, declareTopology: true, httpPort: nil, httpHost: "127.0.0.1", topologyDirectory: nil)
    }
}
#endif
