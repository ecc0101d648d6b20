// rabbitmq-c 0.11 decodes nested header tables and arrays recursively without a depth limit, on the
// connection's own thread; the client's copy into Swift values recursed again. A producer that nests a
// header a few thousand levels deep (about 5 bytes a level, well within one frame) must not be able to
// kill a consumer: that delivery would come back after every restart, before anything could count it.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("Deeply nested headers")
struct DeepHeadersTests {
    /// Publishes, from inside the broker, a message whose header `deep` is `depth` arrays inside each
    /// other around a string (this client refuses to build such a value itself).
    static func publishNested(depth: Int, messageId: String, queue: String) throws {
        let vhost = try AMQPConfiguration(url: TestBroker.url).vhost
        let erlang = """
            Deep = lists:foldl(fun(_, Acc) -> {array, [Acc]} end, {longstr, <<"bottom">>}, lists:seq(1, \(depth))),
            {T, V} = Deep,
            P = {'P_basic', undefined, undefined, [{<<"deep">>, T, V}, {<<"flat">>, longstr, <<"kept">>}],
                 undefined, undefined, undefined, undefined, undefined, <<"\(messageId)">>, undefined, undefined,
                 undefined, undefined, undefined},
            rabbit_basic:publish(rabbit_misc:r(<<"\(vhost)">>, exchange, <<>>), <<"\(queue)">>, P, <<"body">>).
            """
        _ = try TestBroker.rabbitmqctl(["eval", erlang])
    }

    /// How many arrays deep `value` goes, and what is at the bottom.
    static func depth(of value: FieldValue?) -> (Int, FieldValue?) {
        var levels = 0
        var current = value
        while case .array(let values) = current, let first = values.first {
            levels += 1
            current = first
        }
        return (levels, current)
    }

    // The broker encodes nested arrays in quadratic time (3 s for a full 128 KiB frame here, idle; a
    // loaded CI run timed out the consume at 30 s). A connection that negotiates 64 KiB frames fills one
    // with 13,000 levels for a quarter of that work: still deeper than a 1 MiB stack survives (about 100
    // bytes a level), and at the top of what this frame size lets a producer send. The connection's RPC
    // timeout leaves room for a loaded machine.
    @Test("a header nested 13,000 levels deep (a full 64 KiB frame) arrives cut at the client's limit; the connection lives on")
    func deepHeader() async throws {
        try await withConnection("deep-headers", configure: {
            $0.frameMax = 65_536
            $0.rpcTimeout = .seconds(120)
        }) { connection, scratch in
            #expect(await connection.negotiatedFrameMax == 65_536)
            let queue = scratch.queue("deep")
            try await connection.declareQueue(QueueDeclaration(name: queue, durable: false))
            try await runOnThread { try Self.publishNested(depth: 13_000, messageId: "deep-1", queue: queue) }
            try await runOnThread { try Self.publishNested(depth: 3, messageId: "shallow-1", queue: queue) }
            let inbox = Inbox(try await connection.consume(queue: queue))
            let deliveries = try await inbox.take(2, timeout: .seconds(120))

            let deep = try #require(deliveries.first { $0.properties.messageId == "deep-1" })
            #expect(deep.properties.headers?["flat"] == .string("kept"))
            let (levels, bottom) = Self.depth(of: deep.properties.headers?["deep"])
            #expect(levels < AMQPConnection.maximumHeaderNesting)
            #expect(bottom?.stringValue?.contains("nested deeper than") == true, "\(String(describing: bottom))")

            let shallow = try #require(deliveries.first { $0.properties.messageId == "shallow-1" })
            let (shallowLevels, shallowBottom) = Self.depth(of: shallow.properties.headers?["deep"])
            #expect(shallowLevels == 3 && shallowBottom == .string("bottom"), "shallow nesting is kept as it is")

            for delivery in deliveries { try await connection.ack(delivery.tag) }
            #expect(await connection.isConnected)
            #expect(await connection.recoveryCount == 0)
        }
    }
}
