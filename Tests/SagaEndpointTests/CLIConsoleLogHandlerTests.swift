// The executable's log handler's text layout. Compiled only with SAGA_ENDPOINT_CLI_TESTS (see
// CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import Logging
@testable import saga_endpoint
import Testing

@Suite struct CLIConsoleLogHandlerTests {
    // A review: a line break in a value (a reason quoting a message) started a second line that could pass
    // for a record of its own, while the README says one record per line.
    @Test func aTextRecordIsOneLineWhateverItsValuesHold() {
        let line = ConsoleLogHandler.line(.text, time: "2026-12-07T01:45:12.345Z", level: .warning, label: "saga-endpoint",
                                          message: "moved\r\nto the error queue", source: "SagaEndpoint",
                                          metadata: ["reason": "bad\n2026-12-07T01:45:13.000Z critical saga-endpoint: forged"])
        #expect(!line.contains("\n") && !line.contains("\r"), "\(line)")
        #expect(line.contains(#"reason=bad\n2026"#) && line.contains(#"moved\r\nto"#), "\(line)")
    }

    // A review: only line breaks were escaped. A message id from any publisher holding an escape sequence
    // reached the operator's terminal as it was (a window title set, the screen cleared), and NEL or U+2028
    // break lines in some log viewers.
    @Test func aTextRecordHoldsNoControlCharacters() {
        let id = "m-1\u{1B}]0;pwned\u{07}\u{1B}[2J\u{0}\u{8}\u{7F}\u{85}\u{2028}\u{2029}\tend"
        let line = ConsoleLogHandler.line(.text, time: "2026-12-07T01:45:12.345Z", level: .warning, label: "saga-endpoint",
                                          message: "rejected \(id)", source: "SagaEndpoint", metadata: ["message_id": "\(id)"])
        let controls = line.unicodeScalars.filter {
            $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}"
        }
        #expect(controls.isEmpty, "\(controls.map(\.value))")
        #expect(line.contains(#"message_id=m-1\u{1B}]0;pwned\u{7}\u{1B}[2J\u{0}\u{8}\u{7F}\u{85}\u{2028}\u{2029}\tend"#), "\(line)")
        // Printable text outside ASCII stays as it is.
        #expect(ConsoleLogHandler.oneLine("Überweisung 🏦") == "Überweisung 🏦")
    }
}
#endif
