import BrokerTestSupport
import Foundation

/// A broker user of a test's own on the harness's vhost, for what a user without some permission meets.
struct TestUser {
    let name: String
    let vhost: String
    /// The harness's broker URL with this user and its password.
    let url: String

    /// Sets the user's configure, write and read patterns on the vhost (`""`: nothing).
    func permit(configure: String, write: String, read: String) async throws {
        _ = try await runOnThread {
            try TestBroker.rabbitmqctl(["set_permissions", "-p", vhost, name, configure, write, read])
        }
    }
}

extension EndpointHarness {
    /// Runs `body` with a new user on this vhost holding the permissions given, and deletes the user after
    /// it, also when it throws.
    func withUser(_ prefix: String, configure: String, write: String, read: String,
                  _ body: (TestUser) async throws -> Void) async throws {
        let name = TestBroker.uniqueName(prefix)
        let password = "\(prefix)-secret"
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["add_user", name, password]) }
        var components = URLComponents(string: url)!
        components.user = name
        components.password = password
        let user = TestUser(name: name, vhost: vhost, url: components.string!)
        do {
            try await user.permit(configure: configure, write: write, read: read)
            try await body(user)
        } catch {
            _ = try? await runOnThread { try TestBroker.rabbitmqctl(["delete_user", name]) }
            throw error
        }
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["delete_user", name]) }
    }
}
