// A bad setting, as an operator sees it from the shell: whichever layer it came from (a flag, an
// environment variable, the config file), it stops the command with exit status 64 (EX_USAGE), a
// message naming where the value came from, and the usage line of the command that was run.
import BrokerTestSupport
import Foundation
import Testing

extension CLIProcessTests {
    /// A command line, the config file it is given (if any), and what the message must name.
    struct BadSetting: Sendable, CustomTestStringConvertible, CustomStringConvertible {
        var arguments: [String]
        var file: String?
        var environment: [String: String] = [:]
        var names: String

        var testDescription: String { description }

        var description: String {
            (arguments + (file.map { ["--config", $0] } ?? []) + environment.map { "\($0.key)=\($0.value)" })
                .joined(separator: " ")
        }
    }

    /// Runs the executable (no broker needed: a bad setting stops it first) with `setting`, in an environment
    /// of its own so that the test process's AMQP_URL does not win over the file's value.
    private func outcome(_ setting: BadSetting) async throws -> (status: Int32, error: String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bad-setting-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var arguments = setting.arguments
        if let json = setting.file {
            let path = folder.appendingPathComponent("saga.json").path
            try Data(json.utf8).write(to: URL(fileURLWithPath: path))
            arguments += ["--config", path]
        }
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
            .merging(setting.environment) { _, new in new }
        let process = try ChildProcess(executable: Self.executablePath, arguments: arguments, environment: environment,
                                       inheritEnvironment: false, currentDirectory: folder.path)
        defer { process.kill(signal: SIGKILL) }
        let status = try await runOnThread { try process.waitUntilExit(timeout: .seconds(30)) }
        return (status, process.errorOutput())
    }

    /// The command's own name as its usage line shows it (`saga-endpoint errors list`).
    private func commandName(_ arguments: [String]) -> String {
        (["saga-endpoint"] + arguments.prefix { !$0.hasPrefix("-") }.prefix(2))
            .joined(separator: " ")
    }

    // Failed before: the operator commands read the config file in `run()`, after ArgumentParser had
    // forgotten the subcommand, so a bad URL there printed the root's usage (`saga-endpoint <subcommand>`);
    // and a value of the wrong type, an unknown key or a missing file exited 1, while the same value as a
    // flag exited 64.
    @Test("a bad setting from the config file exits 64 with the command's usage line, like a bad flag", arguments: [
        BadSetting(arguments: ["errors", "list"], file: #"{"amqp-url": "http://user:secret@host/"}"#,
                   names: "'amqp-url' in config file"),
        BadSetting(arguments: ["topology", "verify"], file: #"{"run": {"amqp-url": "http://host/"}}"#,
                   names: "'run.amqp-url' in config file"),
        BadSetting(arguments: ["transfer", "--from", "a", "--to", "b", "--amount", "1"], file: #"{"amqp-url": 5}"#,
                   names: "'amqp-url' must be a non-empty string"),
        BadSetting(arguments: ["sagas", "list"], file: #"{"run": {"database": "/"}}"#,
                   names: "'run.database' in config file"),
        BadSetting(arguments: ["errors", "purge"], file: #"{"amqp-ulr": "amqp://host/"}"#,
                   names: "'amqp-ulr' is not a known setting"),
        BadSetting(arguments: ["run"], file: #"{"prefetch": 0}"#, names: "'prefetch' must be an integer from 1"),
        BadSetting(arguments: ["bank"], file: #"{"bank": {"debit-fee": -1}}"#, names: "'bank.debit-fee' must be"),
        BadSetting(arguments: ["run"], file: #"{"prefetch" 10}"#, names: "is not valid JSON"),
        BadSetting(arguments: ["run", "--config", "/nonexistent/saga.json"], names: "config file /nonexistent/saga.json: does not exist"),
        BadSetting(arguments: ["sagas", "list"], environment: ["SAGA_CONFIG": "/nonexistent/saga.json"],
                   names: "config file /nonexistent/saga.json: does not exist"),
        // Failed before: the URL parsed, and the file was found missing only when connecting (status 1).
        BadSetting(arguments: ["errors", "list"],
                   environment: ["AMQP_URL": "amqps://user:secret@127.0.0.1:5671/?cacertfile=/nonexistent/ca.pem"],
                   names: "invalid AMQP_URL: cacertfile /nonexistent/ca.pem cannot be read"),
        BadSetting(arguments: ["run"], file: #"{"amqp-url": "amqps://host/?certfile=/nonexistent/c.pem&keyfile=/nonexistent/k.pem"}"#,
                   names: "certfile /nonexistent/c.pem cannot be read"),
        // A directory is "readable", and failed only when connecting (status 1).
        BadSetting(arguments: ["errors", "list"],
                   environment: ["AMQP_URL": "amqps://user:secret@127.0.0.1:5671/?cacertfile=/tmp"],
                   names: "invalid AMQP_URL: cacertfile /tmp cannot be read"),
    ])
    func badSettingFromTheFile(setting: BadSetting) async throws {
        let (status, error) = try await outcome(setting)
        #expect(status == 64, "\(error)")
        #expect(error.contains(setting.names), "\(error)")
        #expect(error.contains("Usage: \(commandName(setting.arguments)) "), "\(error)")
        #expect(error.contains("See '\(commandName(setting.arguments)) --help'"), "\(error)")
        #expect(!error.contains("secret"), "\(error)")
    }

    // The same value given as a flag, an environment variable and in the file: one exit status.
    @Test("the same bad value exits with the same status from a flag, the environment or the file", arguments: [
        [BadSetting(arguments: ["run", "--prefetch", "0"], names: "--prefetch"),
         BadSetting(arguments: ["run"], file: #"{"prefetch": 0}"#, names: "'prefetch'")],
        [BadSetting(arguments: ["errors", "list", "--amqp-url", "http://host/"], names: "--amqp-url"),
         BadSetting(arguments: ["errors", "list"], environment: ["AMQP_URL": "http://host/"], names: "AMQP_URL"),
         BadSetting(arguments: ["errors", "list"], file: #"{"amqp-url": "http://host/"}"#, names: "'amqp-url' in config file")],
        [BadSetting(arguments: ["run", "--http-port", "70000"], names: "--http-port"),
         BadSetting(arguments: ["run"], environment: ["HTTP_PORT": "70000"], names: "HTTP_PORT"),
         BadSetting(arguments: ["run"], file: #"{"http-port": 70000}"#, names: "'http-port'")],
        // Failed before: no such option or key (both exited 64, but as an unknown option and an unknown key).
        [BadSetting(arguments: ["run", "--shutdown-timeout", "0"], names: "--shutdown-timeout must be a positive number of seconds"),
         BadSetting(arguments: ["bank", "--shutdown-timeout=-5"], names: "--shutdown-timeout must be a positive number of seconds"),
         BadSetting(arguments: ["run"], file: #"{"shutdown-timeout": 0}"#,
                    names: "'shutdown-timeout' must be a positive number of seconds"),
         BadSetting(arguments: ["bank"], file: #"{"bank": {"shutdown-timeout": "30"}}"#,
                    names: "'bank.shutdown-timeout' must be a positive number of seconds")],
    ])
    func oneStatusForEveryLayer(layers: [BadSetting]) async throws {
        for setting in layers {
            let (status, error) = try await outcome(setting)
            #expect(status == 64, "\(setting): \(error)")
            #expect(error.contains(setting.names), "\(setting): \(error)")
            #expect(error.contains("Usage: \(commandName(setting.arguments)) "), "\(setting): \(error)")
        }
    }

    // Crashed before (SIGILL): `--bank-timeout 1e300` passed the check (positive, finite), and turning it into
    // milliseconds overflowed an Int64 before anything else ran. Now it counts as a year ("never", in
    // practice), and `run` goes on to its next check: the database folder, missing here.
    @Test("a huge number of seconds for --bank-timeout, from a flag or the file, does not crash run", arguments: [
        BadSetting(arguments: ["run", "--bank-timeout", "1e300", "--database", "/nonexistent/saga.sqlite"],
                   names: "cannot use the database /nonexistent/saga.sqlite"),
        BadSetting(arguments: ["run", "--bank-timeout", "1e16", "--database", "/nonexistent/saga.sqlite"],
                   names: "cannot use the database /nonexistent/saga.sqlite"),
        BadSetting(arguments: ["run"], file: #"{"run": {"bank-timeout": 1e300, "database": "/nonexistent/saga.sqlite"}}"#,
                   names: "cannot use the database /nonexistent/saga.sqlite"),
    ])
    func hugeBankTimeoutDoesNotCrash(setting: BadSetting) async throws {
        let (status, error) = try await outcome(setting)
        #expect(status == 1, "\(error)")
        #expect(error.contains(setting.names), "\(error)")
    }

    // Failed before: ArgumentParser quotes the argument it cannot use, so a broker URL typed without its
    // `--amqp-url` (or as the value of another option) was printed with its password, which the README
    // promises never to print: "Error: Unexpected argument 'amqp://ops:secret@rabbit/'".
    @Test("a URL in an argument the parser refuses is quoted without its password", arguments: [
        BadSetting(arguments: ["errors", "list", "amqp://ops:secret@rabbit.internal/prod"],
                   names: "Unexpected argument 'amqp://ops:***@rabbit.internal/prod'"),
        BadSetting(arguments: ["run", "--no-declare-topology", "amqps://ops:secret@rabbit.internal:5671/"],
                   names: "Unexpected argument 'amqps://ops:***@rabbit.internal:5671/'"),
        BadSetting(arguments: ["run", "--prefetch", "amqp://ops:secret@rabbit.internal/"],
                   names: "The value 'amqp://ops:***@rabbit.internal/' is invalid for '--prefetch"),
    ])
    func aRefusedArgumentHidesItsPassword(setting: BadSetting) async throws {
        let (status, error) = try await outcome(setting)
        #expect(status == 64, "\(error)")
        #expect(error.contains(setting.names), "\(error)")
        #expect(!error.contains("secret"), "\(error)")
        #expect(error.contains("Usage: \(commandName(setting.arguments)) "), "\(error)")
    }

    // Printed the password before: the database's path in "cannot use the database …" (on stderr and in the
    // critical `exiting` record), and a config file's value of the wrong type quoted as it was found.
    @Test("a broker URL given where another setting belongs is quoted without its password", arguments: [
        BadSetting(arguments: ["run", "--log-format", "json", "--database", "amqp://ops:secret@rabbit/x.sqlite"],
                   names: "cannot use the database amqp://ops:***@rabbit/x.sqlite"),
        BadSetting(arguments: ["run"], file: #"{"run": {"prefetch": "amqp://ops:secret@rabbit/"}}"#,
                   names: "'run.prefetch' must be"),
    ])
    func aURLInTheWrongSettingHidesItsPassword(setting: BadSetting) async throws {
        let (status, error) = try await outcome(setting)
        #expect(status != 0, "\(error)")
        #expect(error.contains(setting.names), "\(error)")
        #expect(!error.contains("secret"), "\(error)")
    }

    // Crashed before (SIGILL): `--transfers` plus `--batches` (or `--batches` times `--batch-size`) overflowed
    // an Int in the check itself; a count short of that planned its whole workload in memory first.
    @Test("demo refuses a workload too large to plan instead of crashing", arguments: [
        BadSetting(arguments: ["demo", "--transfers", "9223372036854775807", "--batches", "1"], names: "--transfers"),
        BadSetting(arguments: ["demo", "--transfers", "0", "--batches", "9223372036854775807", "--batch-size",
                               "9223372036854775807"], names: "--batches"),
        BadSetting(arguments: ["demo", "--transfers", "2000000000"], names: "at most 1000000 transfers"),
    ])
    func demoRefusesAnOverflowingWorkload(setting: BadSetting) async throws {
        let (status, error) = try await outcome(setting)
        #expect(status == 64, "\(error)")
        #expect(error.contains(setting.names), "\(error)")
    }
}
