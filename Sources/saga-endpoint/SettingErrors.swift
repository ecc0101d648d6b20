import AMQPTransport
import ArgumentParser
import Foundation

// One rule for a bad setting, whichever layer its value came from (a flag, an environment variable, the
// config file): it is a usage error. The command stops before any work with the message naming where the
// value came from (`--prefetch`, `HTTP_PORT`, `'run.prefetch' in config file saga.json`, or the file
// itself when it is missing or not JSON), the usage line of the command that was run, and exit status 64
// (EX_USAGE), as ArgumentParser reports a bad flag.
//
// ArgumentParser applies that rule itself to what `validate()` finds while it parses: the flags, and the
// environment variables the option groups read. The config file is read later, when the command runs
// (`SettingLayers`), and ArgumentParser's `main` no longer knows the subcommand by then: a ValidationError
// from the file was reported with the root's usage line (`saga-endpoint <subcommand>`), and a
// ConfigFileError (a value of the wrong type or out of range, an unknown key, a missing file) as a plain
// failure with status 1, so `--prefetch 0` exited 64 and `"prefetch": 0` in the file exited 1. Scripts and
// service managers tell a configuration to fix from a failure to retry by that status.

extension SagaEndpointCLI {
    /// ArgumentParser's `main`, with the rule above for the errors a command throws while it runs.
    static func mainReportingSettingErrors(_ arguments: [String]? = nil) async -> Never {
        FinalErrorRecord.requested(arguments: arguments ?? Array(CommandLine.arguments.dropFirst()),
                                   environment: ProcessInfo.processInfo.environment)
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            // Parsing and `validate()`: ArgumentParser knows the subcommand here. `--help` is a clean exit
            // printed to stdout as ArgumentParser does; a refused argument is quoted without its password
            // (ParseErrorRedaction.swift).
            exitRedacting(error, report: redactedParseReport(error))
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // Either report may quote a setting's value, and a broker URL put where a path or a number
            // belongs (`--database amqp://ops:secret@host/x`, `"prefetch": "amqp://…"`) was printed with its
            // password: every URL in them is redacted (ParseErrorRedaction.swift).
            if let report = settingErrorReport(error, command: type(of: command)) {
                printError(FinalErrorRecord.render(AMQPConfiguration.redactingURLs(in: report), status: ExitCode.validationFailure.rawValue))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
            // The command's own failure keeps its status; a lost output is worth a line too.
            if let failure = StandardStreams.outputFailure() {
                printError(FinalErrorRecord.render(outputLost(failure), status: exitCode(for: error).rawValue))
            }
            exitRedacting(error, report: AMQPConfiguration.redactingURLs(in: fullMessage(for: error)))
        }
        // Its result is what it printed: a command whose output could not be written failed.
        if let failure = StandardStreams.outputFailure() {
            printError(FinalErrorRecord.render(outputLost(failure), status: ExitCode.failure.rawValue))
            Foundation.exit(ExitCode.failure.rawValue)
        }
        exit()
    }

    /// ArgumentParser's `exit(withError:)` with `report` (the error's message, its URLs redacted) printed
    /// instead of its own; a clean exit (`--help`) goes to stdout as ArgumentParser prints it.
    private static func exitRedacting(_ error: any Error, report: @autoclosure () -> String) -> Never {
        let code = exitCode(for: error)
        guard code != .success else { exit(withError: error) }
        let text = report()
        if !text.isEmpty { printError(FinalErrorRecord.render(text, status: code.rawValue)) }
        Foundation.exit(code.rawValue)
    }

    private static func outputLost(_ reason: String) -> String {
        "Error: cannot write to standard output (\(reason)): the command's output is lost"
    }

    /// What to print for `error` thrown by `command` when it is about a setting (see above), in
    /// ArgumentParser's own layout; nil for any other error, which keeps its own message and status.
    static func settingErrorReport(_ error: any Error, command: any ParsableCommand.Type) -> String? {
        // ValidationError: a value that parsed but is not usable (a URL that is not amqp:, a database path
        // that is a folder); ConfigFileError: the file, or a value in it, that cannot be read as a setting.
        guard error is ValidationError || error is ConfigFileError else { return nil }
        let name = commandPath(to: command).joined(separator: " ")
        return "Error: \(message(for: error))\n"
            + "Usage: \(usageString(for: command))\n"
            + "  See '\(name) --help' for more information."
    }

    /// The names from the root to `command` (`saga-endpoint errors list`), as the usage line shows them.
    private static func commandPath(to command: any ParsableCommand.Type) -> [String] {
        func path(from node: any ParsableCommand.Type) -> [String]? {
            if node == command { return [node._commandName] }
            for subcommand in node.configuration.subcommands {
                if let rest = path(from: subcommand) { return [node._commandName] + rest }
            }
            return nil
        }
        return path(from: SagaEndpointCLI.self) ?? [_commandName, command._commandName]
    }
}
