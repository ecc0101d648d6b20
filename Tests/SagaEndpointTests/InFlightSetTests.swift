import Testing
@testable import SagaEndpoint

/// The poller's set of due-row ids in flight, with ids kept a while after their batch (a due row whose
/// error-queue copy was not confirmed). No broker.
@Suite("In-flight ids and their holds")
struct InFlightSetTests {
    @Test("a kept id is released when its own hold ends, not before, and not with a shorter one")
    func holdsEndOneByOne() async throws {
        let set = InFlightSet()
        set.insert(["a", "b", "c", "d"])
        set.remove(["a", "b", "c"], keeping: ["a": .milliseconds(50), "b": .seconds(60)])
        #expect(set.counts == (handedOn: 1, kept: 2))   // d handed on; a and b kept; c done
        #expect(set.contains("a") && set.contains("b") && !set.contains("c"))
        try await Task.sleep(for: .milliseconds(120))
        #expect(!set.contains("a"), "a's hold ended")
        #expect(set.contains("b"), "b's hold has not")
        #expect(set.counts == (handedOn: 1, kept: 1))
    }

    @Test("an id kept and then done again without a hold is neither in flight nor counted as kept")
    func keptThenDone() {
        let set = InFlightSet()
        set.insert(["a", "b"])
        set.remove(["a"], keeping: ["a": .seconds(60)])
        set.remove(["a"])
        #expect(!set.contains("a"))
        #expect(set.counts == (handedOn: 1, kept: 0))
    }
}
