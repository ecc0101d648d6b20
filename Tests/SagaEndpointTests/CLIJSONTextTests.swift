#if SAGA_ENDPOINT_CLI_TESTS
import Foundation
import Testing
@testable import saga_endpoint

/// `sagas show --pretty` and `errors show --pretty` printed an empty saga state or empty headers as an
/// opening brace, a blank line and a closing brace (Foundation's pretty printer on Linux). Failed before.
@Suite("Operator commands' JSON")
struct CLIJSONTextTests {
    @Test("empty objects and arrays print as {} and [] with --pretty; strings are left as they are")
    func emptyContainers() throws {
        let object: [String: Any] = ["state": [String: Any](), "tags": [Any](), "note": "a { } b [\t]",
                                     "nested": ["inner": [String: Any]()]]
        let pretty = try JSONText.render(object, pretty: true)
        #expect(!pretty.contains("\n\n"), "\(pretty)")
        #expect(pretty.contains("\"state\" : {}"), "\(pretty)")
        #expect(pretty.contains("\"tags\" : []"), "\(pretty)")
        #expect(pretty.contains("\"inner\" : {}"), "\(pretty)")
        let decoded = try JSONSerialization.jsonObject(with: Data(pretty.utf8)) as? [String: Any]
        #expect(decoded?["note"] as? String == "a { } b [\t]")
        #expect(try JSONText.render(object, pretty: false).contains("\"state\":{}"))
    }
}
#endif
