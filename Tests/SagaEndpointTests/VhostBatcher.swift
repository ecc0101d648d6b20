import BrokerTestSupport
import Foundation

/// Creates the tests' throwaway vhosts in batches: every `rabbitmqctl` call boots an Erlang VM (about a
/// second of CPU), and tests start in parallel, so one `eval` that adds (and grants `guest` on) all the
/// vhosts asked for at the same moment replaces two calls per test. Exactly as many as requested are
/// created; each test deletes its own.
actor VhostBatcher {
    static let shared = VhostBatcher()

    private var waiting: [(name: String, continuation: CheckedContinuation<Void, any Error>)] = []
    private var creating = false

    /// A fresh vhost with full permissions for `guest`: its name and AMQP URL.
    func make() async throws -> (name: String, url: String) {
        let name = TestBroker.uniqueName("test-vhost")
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            waiting.append((name, continuation))
            if !creating {
                creating = true
                Task { await self.createWaiting() }
            }
        }
        return (name, TestBroker.url(TestBroker.url, vhost: name))
    }

    private func createWaiting() async {
        // Tests that start together join one batch.
        try? await Task.sleep(for: .milliseconds(200))
        while !waiting.isEmpty {
            let batch = waiting
            waiting = []
            let names = batch.map(\.name)
            do {
                try await runOnThread { try Self.create(names) }
                for entry in batch { entry.continuation.resume() }
            } catch {
                for entry in batch { entry.continuation.resume(throwing: error) }
            }
        }
        creating = false
    }

    /// Adds the vhosts and grants `guest` everything on them (also to create one again after a test deleted it).
    static func create(_ names: [String]) throws {
        let list = names.map { "<<\"\($0)\">>" }.joined(separator: ", ")
        let user = "<<\"saga-endpoint-tests\">>"
        try TestBroker.rabbitmqctl(["eval", """
            [begin ok = rabbit_vhost:add(V, \(user)), \
            ok = rabbit_auth_backend_internal:set_permissions(<<"guest">>, V, <<".*">>, <<".*">>, <<".*">>, \(user)) \
            end || V <- [\(list)]].
            """])
    }
}
