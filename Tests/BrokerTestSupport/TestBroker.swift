// The shared broker the tests run against (`make broker`: node `saga` on 127.0.0.1:5672), and helpers
// that keep parallel tests out of each other's way: unique names and throwaway virtual hosts.
import Foundation

/// The shared RabbitMQ node. Tests must not stop, restart or reconfigure it (use `DedicatedBrokerNode`
/// for that); they isolate themselves with `uniqueName(_:)` or a vhost of their own from `makeVhost()`.
public enum TestBroker {
    /// The default URL of the shared node.
    public static let defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

    /// The shared node's URL: env `AMQP_URL`, else `defaultURL`.
    public static var url: String {
        if let url = ProcessInfo.processInfo.environment["AMQP_URL"], !url.isEmpty { return url }
        return defaultURL
    }

    /// `prefix` plus a random suffix, e.g. `uniqueName("orders")` = `orders-k3f9x0q2ma7d`, for queue,
    /// exchange, vhost and node names. A dash is put in between unless `prefix` already ends in `-`, `.`,
    /// `_` or `:`.
    public static func uniqueName(_ prefix: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        let suffix = String((0..<12).map { _ in alphabet.randomElement(using: &generator)! })
        if prefix.isEmpty || "-._:".contains(prefix.last!) { return prefix + suffix }
        return prefix + "-" + suffix
    }

    /// Runs `rabbitmqctl ARGS…` against the shared node (through `scripts/broker.sh ctl`, which honours
    /// BROKER_NAME/BROKER_PORT from the environment) and returns its standard output; throws with the
    /// output when it fails. Each call takes about a second (it boots a small Erlang VM). Add `-q` to drop
    /// the "Listing …" banner, e.g. `["-q", "list_connections", "name"]`.
    @discardableResult
    public static func rabbitmqctl(_ args: [String]) throws -> String {
        try runBrokerScript(["ctl"] + args)
    }

    /// Suspends or resumes (`call`: "suspend", "resume") the process of a classic queue on the shared node.
    /// Suspended, it takes in what its channels route to it but confirms nothing (nor delivers): a publish
    /// to it waits for its confirm until it is resumed.
    public static func queueProcess(_ queue: String, in vhost: String = "/", _ call: String) throws {
        try rabbitmqctl(["eval", """
            {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"\(vhost)">>, queue, <<"\(queue)">>)), \
            sys:\(call)(amqqueue:get_pid(Q)).
            """])
    }

    /// Closes every client connection to the shared node. Careful: tests running in parallel lose theirs
    /// too; prefer a `DedicatedBrokerNode` or a vhost of your own (`closeConnections(vhost:)`).
    public static func closeAllConnections() throws {
        try rabbitmqctl(["close_all_connections", "closed by a test"])
    }

    /// Closes the client connections of one virtual host on the shared node.
    public static func closeConnections(vhost: String) throws {
        try rabbitmqctl(["close_all_connections", "-p", vhost, "closed by a test"])
    }

    /// Creates a fresh virtual host on the shared node with full permissions for `guest` and returns its
    /// name and an AMQP URL for it (the shared URL with the percent-encoded vhost as its path).
    /// Remove it with `deleteVhost(_:)`.
    public static func makeVhost() throws -> (name: String, url: String) {
        let name = uniqueName("test-vhost")
        try rabbitmqctl(["add_vhost", name])
        do {
            try rabbitmqctl(["set_permissions", "-p", name, "guest", ".*", ".*", ".*"])
        } catch {
            _ = try? rabbitmqctl(["delete_vhost", name])
            throw error
        }
        return (name, url(url, vhost: name))
    }

    /// Deletes a virtual host (and everything in it) from the shared node.
    public static func deleteVhost(_ name: String) throws {
        try rabbitmqctl(["delete_vhost", name])
    }

    /// `base` (an amqp:// or amqps:// URL) with its path replaced by the percent-encoded `vhost`
    /// (`/` becomes `%2F`).
    public static func url(_ base: String, vhost: String) -> String {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        let encoded = vhost.addingPercentEncoding(withAllowedCharacters: allowed) ?? vhost
        guard var components = URLComponents(string: base) else { return base + encoded }
        components.percentEncodedPath = "/" + encoded
        return components.string ?? base
    }
}
