import Metrics
import Sagas

/// Times handler calls for `saga_handler_duration_seconds`. A message no saga handles is not timed (the
/// bank's commands, say, have only stateless handlers): its empty saga dispatch would drag the
/// distribution towards zero. A handler that throws is timed too.
struct HandlerTiming: Sendable {
    let timer: Timer?

    /// Times a message's saga dispatch (its handlers with loading and saving their instances).
    func sagas(_ dispatch: () throws -> [SagaInvocation]) rethrows -> [SagaInvocation] {
        let started = ContinuousClock.now
        do {
            let invocations = try dispatch()
            if !invocations.isEmpty { timer?.record(since: started) }
            return invocations
        } catch {
            timer?.record(since: started)
            throw error
        }
    }

    /// Times a message's stateless handlers.
    func stateless<T>(_ run: () async throws -> T) async rethrows -> T {
        let started = ContinuousClock.now
        defer { timer?.record(since: started) }
        return try await run()
    }
}
