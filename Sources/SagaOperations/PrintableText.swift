/// Text that came from outside (a message id, type or header from the broker, a reason quoting them), made
/// safe to write into a text log line or onto an operator's terminal.
///
/// Any publisher on the vhost chooses a message's id, type and headers. A line break in one started a line
/// that could pass for a log record of its own; other control characters went through as they were: an
/// escape sequence (`ESC ]0;…`, `ESC [2J`) in an error-queued message's id acted on the terminal of the
/// operator who ran `errors replay --all` or read the log with `cat`, a NUL or backspace hid part of the
/// line, and NEL and the Unicode line and paragraph separators break lines in some log viewers. The
/// readiness reason of `/health/ready` quotes the broker's error text (a vhost's or queue's name) and goes
/// through here too: public, for the executable's logs and notices and for `OperationsServer`.
public enum PrintableText {
    /// `text` with every control character (C0, DEL, C1) and the Unicode line and paragraph separators
    /// written as an escape (`\n`, `\r`, `\t`, else `\u{1B}`), so it stays one line of visible text.
    public static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var line = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": line.append(contentsOf: "\\n".unicodeScalars)
            case "\r": line.append(contentsOf: "\\r".unicodeScalars)
            case "\t": line.append(contentsOf: "\\t".unicodeScalars)
            case _ where needsEscape(scalar):
                line.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            default: line.append(scalar)
            }
        }
        return String(line)
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
    }
}
