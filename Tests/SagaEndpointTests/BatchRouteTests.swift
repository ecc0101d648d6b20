import Testing
@testable import SagaEndpoint

/// Which way the endpoint's loop sends a batch.
@Suite("Batch route")
struct BatchRouteTests {
    @Test("a batch runs its handlers ahead of its transaction; a redelivery, or handlers ahead turned off, in it")
    func route() {
        #expect(BatchRoute.choose(redelivery: false, handlersAheadEnabled: true) == .handlersAhead)
        #expect(BatchRoute.choose(redelivery: true, handlersAheadEnabled: true) == .handlersInTransaction)
        #expect(BatchRoute.choose(redelivery: false, handlersAheadEnabled: false) == .handlersInTransaction)
        #expect(BatchRoute.choose(redelivery: true, handlersAheadEnabled: false) == .handlersInTransaction)
    }
}
