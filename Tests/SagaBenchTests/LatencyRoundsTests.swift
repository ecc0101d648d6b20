@testable import saga_bench
import Testing

/// The bench's latency figure is the median of its runs, like its rates: one run's p99 on a shared machine
/// is one draw of a noisy figure.
@Suite("Bench latency rounds")
struct LatencyRoundsTests {
    private func run(p50: Double, p99: Double, max: Double, sent: Int = 100, received: Int = 100) -> LatencyResult {
        LatencyResult(rate: 4_000, sent: sent, received: received, p50: p50, p99: p99, max: max, clientMicrosPerMessage: 20)
    }

    @Test("p50 and p99 are the medians of the runs, max the largest; the median run is the one with the middle p99")
    func medians() throws {
        let rounds = try #require(LatencyRounds([
            run(p50: 4, p99: 30, max: 80), run(p50: 6, p99: 12, max: 20), run(p50: 5, p99: 15, max: 40),
        ]))
        #expect(rounds.p99 == 15)
        #expect(rounds.p50 == 5)
        #expect(rounds.max == 80)
        #expect(rounds.medianRun.p99 == 15)
        #expect(rounds.sent == 300 && rounds.received == 300 && rounds.allReceived)
    }

    @Test("a message lost in any run shows, whatever the medians; no runs is no figure")
    func lostMessage() throws {
        let rounds = try #require(LatencyRounds([run(p50: 4, p99: 10, max: 11), run(p50: 4, p99: 10, max: 11, received: 99)]))
        #expect(!rounds.allReceived)
        #expect(rounds.received == 199)
        #expect(rounds.medianRun.p99 == 10)
        #expect(LatencyRounds([]) == nil)
    }
}
