// The demo's folder for its children's logs and databases. Compiled only with SAGA_ENDPOINT_CLI_TESTS (see
// CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import Foundation
@testable import saga_endpoint
import Testing

@Suite struct CLIDemoFolderTests {
    // A review: the folder was created with the umask's mode (0755: every local user could list it and
    // read the children's logs) under `saga-demo-` and 8 hex digits, and one of that name already there was
    // used as it was.
    @Test func theDemoFolderIsNewAndForItsUserOnly() throws {
        let first = try DemoCommand.makeTemporaryDirectory()
        let second = try DemoCommand.makeTemporaryDirectory()
        defer { for path in [first, second] { try? FileManager.default.removeItem(atPath: path) } }
        #expect(first != second)
        for path in [first, second] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
            #expect(mode == 0o700, "\(path): \(String(mode, radix: 8))")
            #expect(attributes[.type] as? FileAttributeType == .typeDirectory)
        }
    }
}
#endif
