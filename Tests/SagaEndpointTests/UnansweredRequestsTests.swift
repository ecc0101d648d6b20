import AMQPTransport
import Foundation
@testable import SagaEndpoint
import Testing

/// `UnansweredRequests`, the request client's memory of requests that ended without their reply.
@Suite("Request client: unanswered requests")
struct UnansweredRequestsTests {
    static func reply(_ key: String) -> Reply {
        Reply(type: "AccountDebited", messageId: "reply-\(key)", correlationId: key, body: Data("{}".utf8),
              properties: BasicProperties(), request: RequestClient.Request(messageId: key, type: "", destination: ""))
    }

    @Test("a reply is kept only for a request that ended unanswered, and taken once")
    func keepAndTake() {
        var unanswered = UnansweredRequests()
        let unasked = unanswered.keep("a", Self.reply("a"))
        #expect(!unasked)
        unanswered.remember("a")
        let kept = unanswered.keep("a", Self.reply("a"))
        let second = unanswered.keep("a", Self.reply("a"))
        #expect(kept && !second, "a second reply is dropped")
        let taken = unanswered.take("a")
        let again = unanswered.take("a")
        #expect(taken?.messageId == "reply-a" && again == nil)
    }

    // A request cancelled while it was sent is remembered at the cancel, and again when its send then fails:
    // the reply that came in between was lost to the second `remember`.
    @Test("remembering a request again keeps the reply that came for it")
    func rememberTwice() {
        var unanswered = UnansweredRequests()
        unanswered.remember("a")
        let kept = unanswered.keep("a", Self.reply("a"))
        unanswered.remember("a")
        let taken = unanswered.take("a")
        #expect(kept && taken?.messageId == "reply-a")
    }

    @Test("past the limit the oldest are forgotten")
    func bounded() {
        var unanswered = UnansweredRequests()
        for index in 0...UnansweredRequests.limit { unanswered.remember("r-\(index)") }
        let oldest = unanswered.keep("r-0", Self.reply("r-0"))
        let next = unanswered.keep("r-1", Self.reply("r-1"))
        let last = unanswered.keep("r-\(UnansweredRequests.limit)", Self.reply("last"))
        #expect(!oldest && next && last)
    }
}
