// `errors show` prints a message with its headers and body (no broker: the JSON of one entry).
#if SAGA_ENDPOINT_CLI_TESTS
import AMQPTransport
import Foundation
@testable import saga_endpoint
@testable import SagaEndpoint
import Testing

@Suite struct CLIErrorsShowTests {
    // Failed before: the help promised headers and body, but only a few chosen fields were printed (no
    // content type, no trace headers, no x-error-description), and a binary body was decoded as UTF-8
    // with its bytes replaced.
    @Test func showPrintsEveryPropertyAndHeaderAndABinaryBodyInBase64() throws {
        var properties = BasicProperties(contentType: "application/octet-stream", deliveryMode: .persistent,
                                         messageId: "m-1", type: "Blob")
        properties.correlationId = "c-1"
        properties.appId = "billing"
        properties.headers = ["x-error-reason": .string("boom"), "traceparent": .string("00-abc-def-01"),
                              "x-attempts": .int32(3), "nested": .table(["flag": .bool(true)]),
                              "x-score": .double(.nan),   // JSON has no NaN: written as text (found in review)
                              // Failed before: printed as a bare base64 string, which reads as a text header.
                              "raw": .bytes(Data([0xC3, 0x28]))]
        let body = Data([0xff, 0x00, 0xfe])
        let entry = ErrorQueueEntry(AMQPMessage(body: body, properties: properties))
        let json = try ErrorsCommand.json(entry, withBody: true)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let printed = try #require(object["properties"] as? [String: Any])
        #expect(printed["content_type"] as? String == "application/octet-stream")
        #expect(printed["app_id"] as? String == "billing")
        #expect(printed["delivery_mode"] as? Int == 2)
        let headers = try #require(object["headers"] as? [String: Any])
        #expect(headers["traceparent"] as? String == "00-abc-def-01")
        #expect(headers["x-attempts"] as? Int == 3)
        #expect(headers["x-score"] as? String == "nan")
        #expect((headers["raw"] as? [String: Any])?["base64"] as? String == Data([0xC3, 0x28]).base64EncodedString())
        #expect((headers["nested"] as? [String: Any])?["flag"] as? Bool == true)
        #expect(object["bodyBase64"] as? String == body.base64EncodedString())
        #expect(object["bodyText"] == nil)
        // `list` (no body) stays one short line per message.
        let listed = try ErrorsCommand.json(entry, withBody: false)
        #expect(!listed.contains("headers") && !listed.contains("properties"))
    }

    // Failed before: `errors list` prints a message without message id as `"messageId":""`, and `show ""`
    // or `replay ""` copied from there looked for an id no message has, then said "no message  in
    // transfers.error" (exit 1) about a message the list had just shown. `delete ""` was already refused.
    @Test(arguments: [["errors", "show", ""], ["errors", "replay", ""], ["errors", "delete", ""]])
    func anEmptyMessageIdIsAUsageError(arguments: [String]) {
        do {
            _ = try SagaEndpointCLI.parseAsRoot(arguments)
            Issue.record("\(arguments) was accepted")
        } catch {
            #expect(SagaEndpointCLI.exitCode(for: error) == .validationFailure)
            #expect(SagaEndpointCLI.message(for: error).contains("the message id must not be empty"),
                    "\(SagaEndpointCLI.message(for: error))")
        }
    }
}
#endif
