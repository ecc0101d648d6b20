@testable import SagaEndpoint
import Testing

@Suite("Transient requeues")
struct TransientRequeuesTests {
    // Failed before: the excuses were only read on quorum queues, never removed, so the ids of messages long
    // settled filled the map until its limit wiped it, excuses of a message still being requeued included.
    @Test("settled messages are forgotten, so the limit does not wipe the excuses of one still requeued")
    func settledMessagesAreForgotten() {
        let requeues = TransientRequeues(limit: 4)
        requeues.insert("still-requeued")
        requeues.insert("still-requeued")
        for index in 0..<20 {
            requeues.insert("m-\(index)")
            requeues.forget(["m-\(index)"])
        }
        #expect(requeues.take("still-requeued"))
        #expect(requeues.take("still-requeued"), "both excuses kept")
        #expect(!requeues.take("still-requeued"))
    }
}
