import AMQPTransport
import BrokerTestSupport
import Foundation
import Sagas
import Testing

@Suite("Poison messages", .timeLimit(.minutes(6)))
struct PoisonMessageTests {
    /// The fixture's message whose handler kills the process (see Tests/EndpointFixture).
    struct CrashNow: Message {
        static let messageType = "CrashNow"
        var note: String
    }

    /// Starts the counter fixture (`--max-deliveries 3`) again and again until one keeps running with a
    /// copy in `counters.error` (at most 8 crashes); returns how many crashed.
    static func crashesUntilDiverted(_ harness: EndpointHarness) async throws -> Int {
        var crashes = 0
        while crashes < 8 {
            let process = try harness.startFixture(app: "counter", database: "counter",
                                                   extraArguments: ["--max-deliveries", "3"])
            // Generous: the first minute of a full test run boots several broker nodes at once, and a
            // process may need long to connect and take its due rows then.
            do {
                try await waitUntil(timeout: .seconds(90)) {
                    if !process.isRunning { return true }
                    return try await harness.depth("counters.error") == 1
                }
            } catch {
                let depth = try? await harness.depth("counters.error")
                Issue.record("after \(crashes) crashes, a process neither crashed nor diverted; counters.error holds \(String(describing: depth)); its last log lines:\n\(process.errorLines().suffix(30).joined(separator: "\n"))")
                process.kill(signal: SIGKILL)
                throw error
            }
            let diverted = process.isRunning
            if diverted { process.kill(signal: SIGTERM) } else { crashes += 1 }
            _ = try? await runOnThread { try process.waitUntilExit(timeout: .seconds(20)) }
            if diverted { break }
        }
        return crashes
    }

    @Test("a message that kills the process goes to the error queue after maxDeliveries, not a crash loop")
    func poisonMessageIsDiverted() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.send(CrashNow(note: "boom"), to: "counters", messageId: "poison-1")
        let crashes = try await Self.crashesUntilDiverted(harness)
        // Delivered three times (each a crash); the fourth delivery is diverted.
        #expect(crashes == 3)
        let copies = try await harness.receive(from: "counters.error", count: 1)
        let copy = try #require(copies.first)
        #expect(copy.properties.messageId == "poison-1")
        #expect(copy.properties.headers?["x-error-type"] == "PoisonMessage")
        #expect(copy.properties.headers?["x-attempts"]?.intValue == 4)
        await harness.tearDown()
    }

    /// The fixture's saga whose timeout kills the process (see Tests/EndpointFixture).
    struct ArmCrash: Message {
        static let messageType = "ArmCrash"
        var id: String
    }

    // Failed before: the timeout was due again at every start and killed every process (eight crashes,
    // nothing diverted); only deliveries were counted.
    @Test("a timeout that kills the process goes to the error queue after maxDeliveries, not a crash loop")
    func poisonTimeoutIsDiverted() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.send(ArmCrash(id: "bomb-1"), to: "counters", messageId: "arm-1")
        let crashes = try await Self.crashesUntilDiverted(harness)
        // The first process dies when the timeout comes due (not counted: it fell due while it ran). Each
        // later process counts it as it takes it at its start (1, 2, 3: a due row's first count is 1, as
        // most overdue rows simply fell due while nothing ran) and dies too; the fifth counts 4 and
        // diverts it.
        #expect(crashes == 4)
        let copies = try await harness.receive(from: "counters.error", count: 1)
        let copy = try #require(copies.first)
        #expect(copy.properties.type == "Detonate")
        #expect(copy.properties.headers?["x-error-type"] == "PoisonMessage")
        #expect(copy.properties.headers?["x-attempts"]?.intValue == 4)
        let leftover = try await harness.withStore("counter") { try $0.timeoutCount() }
        #expect(leftover == 0, "the row is deleted once its error copy is confirmed")
        await harness.tearDown()
    }
}
