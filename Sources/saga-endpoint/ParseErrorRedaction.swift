import AMQPTransport
import ArgumentParser

// ArgumentParser quotes the argument it cannot use ("Unexpected argument 'amqp://ops:secret@rabbit/'",
// "The value '…' is invalid for '--prefetch <prefetch>'"). A broker URL typed without its `--amqp-url`, or
// after the wrong option, was printed with its password, which the README promises never to print, and
// stderr goes to the service manager's journal. What the parser says about the command line goes through
// here; the usage and help lines after it are the program's own text and stay as they are.

extension SagaEndpointCLI {
    /// ArgumentParser's report of a parse error (`fullMessage(for:)`), with the password of every URL in
    /// the error's own message hidden.
    static func redactedParseReport(_ error: any Error) -> String {
        let full = fullMessage(for: error)
        let plain = message(for: error)
        let redacted = AMQPConfiguration.redactingURLs(in: plain)
        guard redacted != plain else { return full }
        return full.replacingOccurrences(of: plain, with: redacted)
    }
}
