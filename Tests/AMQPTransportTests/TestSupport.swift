// Helpers shared by the transport tests: a connection per test with automatic cleanup of what the test
// declared, and an inbox that collects a consumer's deliveries so tests can wait for them with a timeout.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Logging
import Testing

/// Names of queues and exchanges a test declared, deleted when the test ends (pass or fail).
final class Scratch: Sendable {
    private let names = Box<(queues: [String], exchanges: [String])>(([], []))

    /// A fresh queue name, deleted at the end of the test.
    func queue(_ prefix: String) -> String {
        let name = TestBroker.uniqueName("amqp-test-\(prefix)")
        names.withLock { $0.queues.append(name) }
        return name
    }

    /// A fresh exchange name, deleted at the end of the test.
    func exchange(_ prefix: String) -> String {
        let name = TestBroker.uniqueName("amqp-test-\(prefix)")
        names.withLock { $0.exchanges.append(name) }
        return name
    }

    /// Deletes everything through a fresh connection (the test's own may be broken on purpose).
    func cleanUp(url: String) async {
        let (queues, exchanges) = names.withLock { $0 }
        guard !queues.isEmpty || !exchanges.isEmpty else { return }
        guard let connection = try? await AMQPConnection.connect(url: url, connectionName: "cleanup", logger: quietLogger)
        else { return }
        for queue in queues { _ = try? await connection.deleteQueue(queue) }
        for exchange in exchanges { try? await connection.deleteExchange(exchange) }
        await connection.close()
    }
}

/// A logger for connections whose warnings are expected (cleanup, deliberate failures).
let quietLogger: Logger = {
    var logger = Logger(label: "amqp-test")
    logger.logLevel = .error
    return logger
}()

/// Runs `body` with a new connection to `url` (named uniquely after `name`, so a test can find it with
/// rabbitmqctl) and a `Scratch` for names; closes the connection and deletes the names afterwards.
func withConnection<T>(
    _ name: String, url: String = TestBroker.url, recovery: RecoveryPolicy = .default,
    configure: (inout AMQPConfiguration) -> Void = { _ in },
    _ body: (AMQPConnection, Scratch) async throws -> T
) async throws -> T {
    let scratch = Scratch()
    var configuration = try AMQPConfiguration(url: url)
    configuration.connectionName = TestBroker.uniqueName("amqp-test-\(name)")
    configure(&configuration)
    let connection = try await AMQPConnection.connect(configuration, recovery: recovery)
    do {
        let result = try await body(connection, scratch)
        await connection.close()
        await scratch.cleanUp(url: url)
        return result
    } catch {
        await connection.close()
        await scratch.cleanUp(url: url)
        throw error
    }
}

/// A message with a message id and a small body.
func message(_ id: String, persistent: Bool = false, headers: FieldTable? = nil) -> AMQPMessage {
    AMQPMessage(body: Data(id.utf8), properties: BasicProperties(
        headers: headers, deliveryMode: persistent ? .persistent : nil, messageId: id))
}

/// Collects the deliveries of a consumer in the background, so tests can wait for a number of them with a
/// timeout instead of iterating the stream (which would hang forever when a message never comes).
final class Inbox: Sendable {
    private struct State {
        var received: [AMQPDelivery] = []
        var taken = 0
        var ending: Result<Void, any Error>?
    }

    private let state = Box(State())

    /// Starts reading; the reader runs until the stream ends (consumer cancelled, connection closed), even
    /// when the inbox is gone (leaving the iteration early would abandon the consumer).
    init(_ consumer: AMQPConsumer) {
        let deliveries = consumer.deliveries
        let state = self.state
        Task {
            do {
                for try await delivery in deliveries { state.withLock { $0.received.append(delivery) } }
                state.withLock { $0.ending = .success(()) }
            } catch {
                state.withLock { $0.ending = .failure(error) }
            }
        }
    }

    /// Everything received so far, taken or not.
    var all: [AMQPDelivery] { state.withLock { $0.received } }
    var count: Int { state.withLock { $0.received.count } }
    /// How the stream ended: nil while it is open.
    var end: Result<Void, any Error>? { state.withLock { $0.ending } }

    /// The next `count` deliveries not taken before; throws if they do not arrive within `timeout`.
    func take(_ count: Int, timeout: Duration = .seconds(10)) async throws -> [AMQPDelivery] {
        try await waitUntil(timeout: timeout, message: "\(count) more deliveries") {
            state.withLock { $0.received.count - $0.taken >= count }
        }
        return state.withLock { s in
            defer { s.taken += count }
            return Array(s.received[s.taken..<s.taken + count])
        }
    }

    /// The next delivery not taken before.
    func next(timeout: Duration = .seconds(10)) async throws -> AMQPDelivery {
        try await take(1, timeout: timeout)[0]
    }

    /// Waits until the stream ends and returns the error it ended with (nil: it finished normally).
    func waitForEnd(timeout: Duration = .seconds(10)) async throws -> (any Error)? {
        try await waitUntil(timeout: timeout, message: "the deliveries stream to end") { end != nil }
        if case .failure(let error) = end { return error }
        return nil
    }
}

/// A lock-protected value (NSLock: `Synchronization.Mutex` needs macOS 15).
final class Box<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// The error `body` throws, as an `AMQPError` (records an issue and returns nil when it throws nothing or
/// something else).
func amqpError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async -> AMQPError? {
    do {
        try await body()
        Issue.record("expected an AMQPError, nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as AMQPError {
        return error
    } catch {
        Issue.record("expected an AMQPError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

