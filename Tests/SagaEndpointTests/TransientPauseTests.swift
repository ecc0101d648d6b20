@testable import SagaEndpoint
import Testing

/// The transient failures' pause (`BatchPipeline.pause`) in a task that is cancelled without a graceful
/// shutdown (the endpoint's cancellation cancels the batches in flight). Failed before: `Task.sleep` throws
/// at once in a cancelled task, and the pause went round its loop without sleeping until the pause was over
/// (414,000 rounds for 2 s here, a core at 100 %).
@Suite("The transient failures' pause")
struct TransientPauseTests {
    @Test("ends at its first sleep once the task is cancelled, rather than spinning through what is left")
    func cancelledPauseEnds() async {
        let sleeps = Tally()
        let pausing = Task {
            await BatchPipeline.pause(.seconds(2), unless: { false }) { duration in
                sleeps.increment()
                try await Task.sleep(for: duration)
            }
        }
        pausing.cancel()
        await pausing.value
        #expect(sleeps.count == 1)
    }

    @Test("ends once stopping is seen")
    func stoppingEndsThePause() async {
        let sleeps = Tally()
        await BatchPipeline.pause(.seconds(3600), unless: { sleeps.count >= 2 }) { duration in
            sleeps.increment()
            try await Task.sleep(for: duration)
        }
        #expect(sleeps.count == 2)
    }
}
