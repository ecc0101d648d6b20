// A connection limit the broker enforces (`rabbitmqctl set_vhost_limits -p VH '{"max-connections": N}'`,
// or `set_user_limits`) frees up as soon as other connections close, e.g. while several endpoints reconnect
// at once in a rolling restart: `connectRetrying` waits for it instead of giving up as if the login were
// refused.
import AMQPTransport
import BrokerTestSupport
import Foundation
import LogTestSupport
import Testing

@Suite("Connection limits")
struct ConnectionLimitTests {
    // Failed before: RabbitMQ's "530 NOT_ALLOWED - access to vhost 'VH' refused for user 'guest':
    // connection limit (1) is reached" was reported as a refused login (.authenticationFailed), so
    // `connectRetrying` gave up at once although the limit frees up when another connection closes.
    @Test("a vhost at its connection limit: connect throws a transient error, connectRetrying waits for a free slot")
    func vhostLimit() async throws {
        try await withLimitedVhost(maxConnections: 1) { url in
            var configuration = try AMQPConfiguration(url: url)
            configuration.connectionName = TestBroker.uniqueName("amqp-test-limit-holder")
            let holder = try await AMQPConnection.connect(configuration, recovery: .disabled, logger: quietLogger)

            let error = await amqpError { _ = try await AMQPConnection.connect(url: url, logger: quietLogger) }
            #expect(error?.code == .connectionLimit, "\(String(describing: error))")
            #expect(error?.replyCode == 530, "\(String(describing: error))")
            #expect(error?.isTransient == true, "\(String(describing: error))")
            #expect(error?.message.contains("connection limit (1) is reached") == true, "\(String(describing: error))")

            let logs = CapturedLog()
            let outcome = Box<Result<AMQPConnection, any Error>?>(nil)
            configuration.connectionName = TestBroker.uniqueName("amqp-test-limit-waiter")
            let retrying = Task { [configuration] in
                do {
                    let connection = try await AMQPConnection.connectRetrying(
                        configuration, recovery: RecoveryPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200)),
                        logger: logs.logger(label: "amqp-test"))
                    outcome.withLock { $0 = .success(connection) }
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
            }
            // A few retries pass while the holder keeps the only slot.
            try? await waitUntil(timeout: .seconds(10), message: "three retries of connectRetrying") {
                logs.entries.filter { $0.level == .warning }.count >= 3 || outcome.withLock { $0 } != nil
            }
            let early = outcome.withLock { $0 }
            #expect(early == nil, "connectRetrying ended while the vhost was full: \(String(describing: early))")

            await holder.close()
            do {
                try await waitUntil(timeout: .seconds(15), message: "connectRetrying to connect once the slot is free") {
                    outcome.withLock { $0 } != nil
                }
            } catch {
                retrying.cancel()
                Issue.record(error)
            }
            await retrying.value
            let connection = try #require(try outcome.withLock { $0 }?.get())
            #expect(await connection.isConnected)
            await connection.close()

            let retries = logs.entries.filter { $0.level == .warning }
            #expect(!retries.isEmpty)
            for entry in retries {
                #expect(entry.message.contains("connection limit reached"), "\(entry.message)")
                #expect(entry.metadata["error"]?.contains("connection limit (1) is reached") == true, "\(entry.metadata)")
            }
        }
    }

    /// Runs `body` with the URL of a fresh vhost (guest may use it) limited to `maxConnections`, and
    /// deletes the vhost afterwards.
    private func withLimitedVhost(maxConnections: Int, _ body: (String) async throws -> Void) async throws {
        let vhost = try await runOnThread { try TestBroker.makeVhost() }
        do {
            _ = try await runOnThread {
                try TestBroker.rabbitmqctl(["set_vhost_limits", "-p", vhost.name, "{\"max-connections\": \(maxConnections)}"])
            }
            try await body(vhost.url)
        } catch {
            _ = try? await runOnThread { try TestBroker.deleteVhost(vhost.name) }
            throw error
        }
        _ = try? await runOnThread { try TestBroker.deleteVhost(vhost.name) }
    }
}
