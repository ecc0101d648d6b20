@testable import SagaEndpoint
import Testing

@Suite("Warning throttle under a flood of distinct keys")
struct WarningThrottleFloodTests {
    // Keys come from outside: a reply's routing key is its requester's reply queue. Failed before: every key
    // seen within the last minute was kept (5,000 here, 100,000 for as many vanished requesters), and once
    // there were 1,000 of them every new key rebuilt the whole dictionary to prune it, on the settle stage:
    // 20,000 keys a thousand a second took 108 s of CPU in a debug build.
    @Test("distinct keys keep the throttle's size bounded and its pruning proportional to the keys")
    func floodOfDistinctKeys() {
        let keys = 5_000
        let throttle = WarningThrottle(interval: .seconds(1), capacity: 2_000)
        var now = ContinuousClock.now
        for index in 0..<keys {
            now += .milliseconds(1)
            #expect(throttle.admit("\u{0}client.replies.\(index)\u{0}returned(312 NO_ROUTE)", messages: 1, now: now) == 1)
        }
        #expect(throttle.count <= 2_000)
        #expect(throttle.examinedByPruning <= 10 * keys)
    }

    @Test("a key warned about a moment ago is still throttled while other keys come and go")
    func busyKeyStaysThrottled() {
        let throttle = WarningThrottle(interval: .seconds(1), capacity: 2_000)
        var now = ContinuousClock.now
        #expect(throttle.admit("bank nacked", messages: 1, now: now) == 1)
        for index in 0..<1_500 {
            now += .microseconds(100)
            _ = throttle.admit("reply \(index)", messages: 1, now: now)
        }
        #expect(throttle.admit("bank nacked", messages: 1, now: now) == nil, "150 ms after its warning")
    }
}
