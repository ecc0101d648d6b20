import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaStore
import Sagas
import Synchronization
import Testing

// Reading an endpoint's SQLite file, collecting queues, and driving fixture processes.

extension EndpointHarness {
    // MARK: Error queues

    /// Parks messages in `queue` as error-queue copies of `transfers` messages (ids in queue order, in
    /// confirmed batches of 200), and waits until the queue counts them. `reason` gives each its
    /// `x-error-reason` by position.
    func park(_ ids: [String], in queue: String = "transfers.error",
              reason: (Int) -> String = { _ in "parked" }) async throws {
        for start in stride(from: 0, to: ids.count, by: 200) {
            let requests = (start..<min(start + 200, ids.count)).map { index in
                PublishRequest.toQueue(queue, AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
                    contentType: "application/json",
                    headers: ["x-original-queue": "transfers", "x-error-reason": .string(reason(index))],
                    deliveryMode: .persistent, messageId: ids[index], type: "TransferRequested")))
            }
            for outcome in await connection.publish(requests) { #expect(outcome == .confirmed) }
        }
        try await waitUntil(timeout: .seconds(20)) { try await self.depth(queue) == ids.count }
    }

    // MARK: Policies

    /// Makes `queue` refuse every publish, as an operator's length limit does (a policy named `policy`:
    /// `max-length` 0, `overflow: reject-publish`); `clear_policy` with that name gives it room again.
    func refusePublishes(to queue: String, policy: String) async throws {
        let (vhost, pattern) = (vhost, "^" + NSRegularExpression.escapedPattern(for: queue) + "$")
        _ = try await runOnThread {
            try TestBroker.rabbitmqctl(["set_policy", "-p", vhost, "--apply-to", "queues", policy, pattern,
                                        #"{"max-length":0,"overflow":"reject-publish"}"#])
        }
    }

    // MARK: The store

    /// Opens the endpoint's SQLite file on a thread of its own (SQLite blocks) and runs `body` on it.
    /// Safe while the endpoint runs (WAL: readers do not block the writer).
    func withStore<T: Sendable>(_ database: String, _ body: @escaping @Sendable (SagaStore) throws -> T) async throws -> T {
        let path = databasePath(database)
        return try await runOnThread {
            let store = try SagaStore(path: path)
            defer { store.close() }
            return try body(store)
        }
    }

    /// Rows in one table of the endpoint's store, optionally filtered (`WHERE …`).
    func rowCount(_ database: String, _ table: String, where condition: String? = nil) async throws -> Int {
        try await withStore(database) { store in
            let sql = "SELECT COUNT(*) FROM \(table)" + (condition.map { " WHERE \($0)" } ?? "")
            return Int(try store.connection.query(sql).first?[0].integerValue ?? 0)
        }
    }

    func saga(_ database: String, type: String, id: String) async throws -> SagaRecord? {
        try await withStore(database) { try $0.loadSaga(type: type, correlationId: id) }
    }

    /// Decodes the state of a live saga, nil when there is none.
    func state<S: Saga>(_ type: S.Type, _ id: String, in database: String) async throws -> S? {
        guard let record = try await saga(database, type: S.sagaType, id: id) else { return nil }
        return try MessageCoding.decode(S.self, from: record.state, messageType: S.sagaType)
    }

    // MARK: Queues

    /// Consumes (and acks) everything that arrives in `queue` until nothing came for `quietFor`, at most
    /// `timeout` in all.
    func drain(_ queue: String, quietFor: Duration = .seconds(1), timeout: Duration = .seconds(20)) async throws -> [AMQPDelivery] {
        let consumer = try await connection.consume(queue: queue, prefetch: 1000)
        let collected = Collected()
        let collector = Task { [connection] in
            for try await delivery in consumer.deliveries {
                collected.append(delivery)
                try await connection.ack(delivery.tag)
            }
        }
        let deadline = ContinuousClock.now + timeout
        var seen = -1
        while ContinuousClock.now < deadline {
            let count = collected.count
            if count == seen { break }
            seen = count
            try await Task.sleep(for: quietFor)
        }
        try? await consumer.cancel()
        _ = await collector.result
        return collected.all
    }

    /// The error-queue copies that arrived for `queue`, waiting for at least `count`.
    func errorMessages(of queue: String, count: Int, timeout: Duration = .seconds(20)) async throws -> [AMQPDelivery] {
        try await receive(from: queue + ".error", count: count, timeout: timeout)
    }

    // MARK: Fixture processes

    /// Starts the fixture and waits until it consumes (its "endpoint started" log line). A fixture that
    /// logged the line and then ended (a crash point reached in a backlog that was there before it started)
    /// counts as started: the caller waits for its exit.
    func startedFixture(app: String, database: String, environment: [String: String] = [:],
                        extraArguments: [String] = []) async throws -> ChildProcess {
        guard FileManager.default.isExecutableFile(atPath: Self.fixturePath) else {
            throw FixtureMissing(path: Self.fixturePath)
        }
        let fixture = try startFixture(app: app, database: database, environment: environment,
                                       extraArguments: extraArguments)
        try await waitUntil(timeout: .seconds(30), message: "fixture did not start") {
            try Self.hasStarted(fixture)
        }
        return fixture
    }

    /// Whether `fixture` has logged "endpoint started"; throws `FixtureFailure` when it ended without it.
    /// The exit is read before the log: once the child has exited its log file is complete, so a child
    /// that logged the line and died at once is not mistaken for one that died before starting.
    static func hasStarted(_ fixture: ChildProcess) throws -> Bool {
        let exited = !fixture.isRunning
        if fixture.errorOutput().contains("endpoint started") { return true }
        if exited { throw FixtureFailure(fixture) }
        return false
    }

    /// SIGTERM, then waits for the exit; returns the exit status.
    @discardableResult
    func terminate(_ fixture: ChildProcess, timeout: Duration = .seconds(15)) async throws -> Int32 {
        fixture.kill(signal: SIGTERM)
        return try await exitStatus(fixture, timeout: timeout)
    }

    func exitStatus(_ fixture: ChildProcess, timeout: Duration) async throws -> Int32 {
        try await runOnThread { try fixture.waitUntilExit(timeout: timeout) }
    }
}

/// A fixture that ended while it was expected to run; carries its log.
struct FixtureFailure: Error, CustomStringConvertible {
    let description: String
    init(_ fixture: ChildProcess) {
        description = "fixture exited (status \(fixture.terminationStatus.map(String.init) ?? "?")):\n"
            + fixture.errorOutput().suffix(4000)
    }
}

struct FixtureMissing: Error, CustomStringConvertible {
    let path: String
    var description: String {
        "the fixture executable is not built at \(path): run `swift build --build-tests` (or plain `swift test`)"
    }
}

/// Deliveries collected by a consumer task.
final class Collected: Sendable {
    private let items = Mutex<[AMQPDelivery]>([])
    func append(_ delivery: AMQPDelivery) { items.withLock { $0.append(delivery) } }
    var count: Int { items.withLock { $0.count } }
    var all: [AMQPDelivery] { items.withLock { $0 } }
}

/// A counter shared with handlers running in the endpoint.
final class Tally: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

extension AMQPDelivery {
    func header(_ key: String) -> String? { properties.headers?[key]?.stringValue }
    func intHeader(_ key: String) -> Int? { properties.headers?[key]?.intValue }
}
