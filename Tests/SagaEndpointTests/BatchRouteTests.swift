import Testing
@testable import SagaEndpoint

/// Which way the endpoint's loop sends a batch: a short batch that arrives while the commit before it is
/// still running must not stall the pipeline by running its handlers in the transaction.
@Suite("Batch route")
struct BatchRouteTests {
    @Test("a full batch runs its handlers ahead; a short one only while the commit before it runs")
    func fullOrBehind() {
        func route(count: Int, running: Bool) -> BatchRoute {
            BatchRoute.choose(redelivery: false, handlersAheadEnabled: true, count: count, batchSize: 100,
                              previousCommitRunning: running)
        }
        #expect(route(count: 100, running: false) == .handlersAhead)
        #expect(route(count: 100, running: true) == .handlersAhead)
        #expect(route(count: 85, running: true) == .handlersAhead)
        #expect(route(count: 1, running: true) == .handlersAhead)
        #expect(route(count: 85, running: false) == .handlersInTransaction)
        #expect(route(count: 1, running: false) == .handlersInTransaction)
    }

    @Test("a redelivery, or handlers ahead turned off, always runs the handlers in the transaction")
    func redeliveryOrDisabled() {
        for running in [false, true] {
            #expect(BatchRoute.choose(redelivery: true, handlersAheadEnabled: true, count: 100, batchSize: 100,
                                      previousCommitRunning: running) == .handlersInTransaction)
            #expect(BatchRoute.choose(redelivery: false, handlersAheadEnabled: false, count: 100, batchSize: 100,
                                      previousCommitRunning: running) == .handlersInTransaction)
        }
    }

    @Test("the commit flag is raised once, and stays raised")
    func commitFlag() {
        let flag = CommitFlag()
        #expect(!flag.isDone)
        flag.markDone()
        #expect(flag.isDone)
    }
}
