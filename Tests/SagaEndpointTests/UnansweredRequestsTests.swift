import AMQPTransport
import Foundation
@testable import SagaEndpoint
import Testing

/// `UnansweredRequests`, the request client's memory of requests that ended without their reply.
@Suite("Request client: unanswered requests")
struct UnansweredRequestsTests {
    static func reply(_ key: String, bytes: Int? = nil) -> Reply {
        Reply(type: "AccountDebited", messageId: "reply-\(key)", correlationId: key,
              body: bytes.map { Data(count: $0) } ?? Data("{}".utf8),
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

    // Failed before (no byte bound): three kept replies of 6 MiB were all held, 18 MiB, and one of 17 MiB
    // was kept too.
    @Test("kept replies are bounded by bytes too: the oldest go first, and one larger than the bound is not kept")
    func boundedByBytes() {
        var unanswered = UnansweredRequests()
        let sixMiB = 6 * 1024 * 1024
        for key in ["a", "b", "c", "huge"] { unanswered.remember(key) }
        let kept = ["a", "b", "c"].map { unanswered.keep($0, Self.reply($0, bytes: sixMiB)) }
        let huge = unanswered.keep("huge", Self.reply("huge", bytes: UnansweredRequests.byteLimit + 1))
        #expect(kept == [true, true, true] && !huge)
        #expect(unanswered.keptBytes <= UnansweredRequests.byteLimit, "\(unanswered.keptBytes)")
        #expect(unanswered.take("a") == nil, "the oldest kept reply was forgotten")
        #expect(unanswered.take("b") != nil && unanswered.take("c") != nil)
        #expect(unanswered.keptBytes == 0)
    }
}
