// Headers the endpoint reads back from an error copy come with the original message, so any producer can
// set them: they must not crash the operator's commands nor write what an operator reads as fact.
import AMQPTransport
import Foundation
import Testing
@testable import SagaEndpoint

@Suite("Error-queue headers an outsider can set")
struct ErrorHeaderTrustTests {
    // Failed before (a review helper's finding): `(replays ?? 0) + 1` trapped, so `errors replay` and
    // `replay --all` died (SIGILL) at that copy, with no summary.
    @Test("a copy whose x-replays is Int.max replays without a crash, counting no further")
    func replaysAtIntMax() async {
        await #expect(processExitsWith: .success) {
            for value: FieldValue in [.int64(Int64.max), .string(String(Int.max)), .int64(-5)] {
                let copy = AMQPMessage(body: Data("bad".utf8), properties: BasicProperties(
                    contentType: "application/json",
                    headers: ["x-replays": value, "x-original-queue": "transfers", "x-error-reason": "r"],
                    messageId: "m", type: "TransferRequested"))
                let replays = ErrorQueueEntry(copy).replayed.properties.headers?["x-replays"]?.stringValue
                guard replays == (value == .int64(-5) ? "1" : String(Int.max)) else { exit(1) }
            }
        }
    }

    // Failed before: the copy took the incoming `x-replayed-first-failure` as its `x-first-failure`,
    // whatever text it held.
    @Test("an outsider's x-replayed-first-failure that is not a time does not become the copy's x-first-failure")
    func forgedFirstFailure() throws {
        let failedAt = Date(timeIntervalSince1970: 1_800_000_000)
        func firstFailure(_ forged: String) -> String? {
            let original = AMQPMessage(body: Data("bad".utf8), properties: BasicProperties(
                contentType: "application/json", headers: ["x-replayed-first-failure": .string(forged)],
                messageId: "m", type: "T"))
            let copy = MessageTranslation.errorQueueRequest(
                original: original, queue: "q", errorQueue: "q.error", reason: "r", errorType: "MalformedMessage",
                attempts: 1, firstFailure: nil, lastFailure: failedAt)
            return copy.message.properties.headers?["x-first-failure"]?.stringValue
        }
        #expect(firstFailure("not a date") == ISO8601DateFormatter().string(from: failedAt))
        // A replayed message's real first failure (as the endpoint wrote it) is kept.
        #expect(firstFailure("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z")
    }
}
