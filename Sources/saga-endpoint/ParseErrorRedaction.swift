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
        let redacted = redactingURLs(plain)
        guard redacted != plain else { return full }
        return full.replacingOccurrences(of: plain, with: redacted)
    }

    /// `text` with `AMQPConfiguration.redact` applied to every whitespace-separated word holding `://`, or
    /// a colon before an `@` (`user:pass@host`, and a URL whose `//` a path operation folded into one: the
    /// folder of `--database amqp://ops:secret@host/x` is `amqp:/ops:secret@host`). A word, not the whole
    /// text: `redact` hides from a URL's colon to the last `@` after it, which in a sentence could be
    /// another word's.
    static func redactingURLs(_ text: String) -> String {
        var result = ""
        var word = ""
        func holdsCredentials(_ word: String) -> Bool {
            if word.contains("://") { return true }
            guard let at = word.lastIndex(of: "@") else { return false }
            return word[..<at].contains(":")
        }
        func flush() {
            result += holdsCredentials(word) ? AMQPConfiguration.redact(word) : word
            word = ""
        }
        for character in text {
            if character.isWhitespace {
                flush()
                result.append(character)
            } else {
                word.append(character)
            }
        }
        flush()
        return result
    }
}
