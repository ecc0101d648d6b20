import BrokerTestSupport
import LogTestSupport
import Logging
import SagaEndpoint
import Testing

/// A web application that connects a `MessageSession` per request logged "AMQP connected" at info for every
/// one: its log filled with a line per request. The line is debug for a session; an endpoint's long-lived
/// connections keep it at info.
@Suite("MessageSession.connect's log", .timeLimit(.minutes(2)))
struct MessageSessionConnectLogTests {
    // Failed before: an info record "AMQP connected" per connect.
    @Test("connecting a session logs nothing at info; the connected line is there at debug")
    func connectLogsAtDebug() async throws {
        let harness = try await EndpointHarness.make()
        let log = CapturedLog()
        for _ in 0..<3 {
            let session = try await MessageSession.connect(url: harness.url, connectionName: "per-request",
                                                           logger: log.logger(label: "web"))
            await session.close()
        }
        let connected = log.entries.filter { $0.message == "AMQP connected" }
        #expect(connected.count == 3, "\(log.lines)")
        #expect(connected.allSatisfy { $0.level == .debug }, "\(log.lines)")
        #expect(!log.entries.contains { $0.level >= .info }, "nothing at info or above: \(log.lines)")
        await harness.tearDown()
    }
}
