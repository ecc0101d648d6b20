import Foundation

/// The JSON the operator commands print (`sagas`, `errors`, `topology export`): one line per record, or
/// indented with `--pretty`, keys sorted.
enum JSONText {
    static func render(_ object: Any, pretty: Bool) throws -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        let text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: options), as: UTF8.self)
        return pretty ? compactingEmptyContainers(text) : text
    }

    /// Foundation's pretty printer (on Linux) writes an empty object or array as its opening bracket, an
    /// empty line and its closing bracket: a saga state or headers of `{}` took three lines, one of them
    /// blank. A line break in JSON text is always whitespace (inside a string it is escaped), so a bracket
    /// followed by a line break and then only whitespace up to its closing bracket is an empty container;
    /// spaces alone are not enough to tell (`"a { } b"` is a string).
    static func compactingEmptyContainers(_ text: String) -> String {
        text.replacing(/\{\n\s*\}/, with: "{}").replacing(/\[\n\s*\]/, with: "[]")
    }
}
