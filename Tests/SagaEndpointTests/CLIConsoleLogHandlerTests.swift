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
}
#endif
