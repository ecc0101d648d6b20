import AMQPTransport
import Logging
import Metrics
import Synchronization

/// The endpoint's health as operators see it: whether it is ready (both broker connections open, every
/// input queue consumed), how often its connections recovered, and two backlogs read from SQLite.
///
/// - `saga_connection_recoveries_total`: re-established broker connections (consumer and publisher).
/// - `saga_timeouts_pending`: rows in the timeouts table: saga timeouts not yet due and delayed retries.
/// - `saga_outbox_backlog`: outgoing messages committed but not yet confirmed by the broker; it should
///   hover near zero, a growing value means publishing is stuck.
/// - `saga_input_queues_unconsumed`: input queues whose consumer ended and that are not consumed again
///   yet (the endpoint keeps trying); anything but 0 is worth an alert.
/// - `saga_broker_blocked`: 1 while the broker blocks a connection's publishes (a memory or disk alarm).
/// - `saga_topology_undeclared`: exchanges, queues and bindings of the topology that the broker refused to
///   declare again after a connection recovered (the transport keeps trying); anything but 0 needs an
///   operator.
/// - `saga_database_unavailable`: 1 while the database cannot be written (a full disk, an I/O error, a
///   corrupt or replaced file, its write lock held by another connection for long): messages are kept
///   unacknowledged and retried meanwhile, nothing is lost, nothing moves.
final class EndpointHealth: Sendable {
    let recoveries: Counter
    let timeoutsPending: Gauge
    let outboxBacklog: Gauge
    let unconsumedQueues: Gauge
    let brokerBlocked: Gauge
    let topologyUndeclared: Gauge
    let databaseUnavailable: Gauge
    /// Why a connection is not serving (lost, or blocked by a resource alarm), for `notReadyReason`.
    private let connectionProblem = Mutex<String?>(nil)

    var connectionTrouble: String? { connectionProblem.withLock { $0 } }
    /// True while the endpoint serves with both connections open.
    let ready = Atomic<Bool>(false)
    /// Set when the graceful shutdown starts: not ready from then on, although the connections stay open
    /// while the batches in flight finish.
    let stopping = Atomic<Bool>(false)
    /// Input queues whose consumer ended while the endpoint runs, with the reason, until they are consumed
    /// again (`SagaEndpoint.forward`): not ready meanwhile.
    private let lost = Mutex<[String: String]>([:])

    var lostConsumers: [String: String] { lost.withLock { $0 } }
    /// Why the last batch could not write the database, until a batch writes it again: not ready meanwhile.
    /// Before, readiness stayed 200 while every message was requeued for as long as the disk was full.
    private let databaseProblem = Mutex<String?>(nil)

    var databaseTrouble: String? { databaseProblem.withLock { $0 } }

    func databaseCannotBeWritten(_ reason: String) {
        databaseProblem.withLock { $0 = reason }
        databaseUnavailable.record(1)
    }

    /// Whether the database was not writable until now.
    func databaseWritten() -> Bool {
        let was = databaseProblem.withLock { problem in
            defer { problem = nil }
            return problem != nil
        }
        if was { databaseUnavailable.record(0) }
        return was
    }

    func consumerLost(_ queue: String, reason: String) {
        unconsumedQueues.record(lost.withLock { lost in
            lost[queue] = reason
            return lost.count
        })
    }

    func consumerResumed(_ queue: String) {
        unconsumedQueues.record(lost.withLock { lost in
            lost.removeValue(forKey: queue)
            return lost.count
        })
    }

    init(factory: any MetricsFactory) {
        recoveries = Counter(label: "saga_connection_recoveries_total", factory: factory)
        timeoutsPending = Gauge(label: "saga_timeouts_pending", factory: factory)
        outboxBacklog = Gauge(label: "saga_outbox_backlog", factory: factory)
        unconsumedQueues = Gauge(label: "saga_input_queues_unconsumed", factory: factory)
        unconsumedQueues.record(0)
        brokerBlocked = Gauge(label: "saga_broker_blocked", factory: factory)
        brokerBlocked.record(0)
        topologyUndeclared = Gauge(label: "saga_topology_undeclared", factory: factory)
        topologyUndeclared.record(0)
        databaseUnavailable = Gauge(label: "saga_database_unavailable", factory: factory)
        databaseUnavailable.record(0)
    }

    /// Follows the connections until cancelled: readiness goes false as soon as either connection is
    /// lost and true again once both are back and all the topology they record is declared again (a
    /// declaration the broker refused after a recovery keeps it not ready, naming it, until the transport's
    /// retry gets it through); each recovery is counted once.
    func watch(_ connections: [AMQPConnection], interval: Duration = .milliseconds(100), logger: Logger) async {
        var counted = [Int](repeating: 0, count: connections.count)
        var wasReady = true
        var wasBlocked = false
        var undeclaredCount = 0
        while !Task.isCancelled {
            var isReady = true
            var problem: String?
            var blocked = false
            // Both connections record the same topology: one entry per declaration (keyed by the declaration
            // itself: bindings of a headers exchange may differ only in their arguments).
            var undeclared: [RecordedDeclaration: String] = [:]
            for (index, connection) in connections.enumerated() {
                let (connected, recoveries) = await (connection.isConnected, connection.recoveryCount)
                if !connected {
                    isReady = false
                    let error = await connection.lastError
                    problem = problem ?? Self.lostConnectionReason(error)
                } else if let reason = await connection.blockedReason {
                    // Connected, but nothing it publishes is confirmed until the alarm clears.
                    isReady = false
                    blocked = true
                    problem = problem ?? "the broker blocks publishing (resource alarm: \(reason)); waiting for it to clear"
                }
                for refused in await connection.unrestoredTopology {
                    undeclared[refused.declaration] = "\(refused.error)"
                }
                if recoveries > counted[index] {
                    self.recoveries.increment(by: recoveries - counted[index])
                    counted[index] = recoveries
                }
            }
            if !undeclared.isEmpty {
                isReady = false
                problem = problem ?? "topology not declared again after a connection recovered: "
                    + undeclared.map { "\($0.key) (\($0.value))" }.sorted().joined(separator: ", ")
                    + "; trying again"
            }
            if undeclared.count != undeclaredCount {
                topologyUndeclared.record(undeclared.count)
                undeclaredCount = undeclared.count
            }
            connectionProblem.withLock { $0 = problem }
            if blocked != wasBlocked {
                brokerBlocked.record(blocked ? 1 : 0)
                wasBlocked = blocked
            }
            ready.store(isReady, ordering: .relaxed)
            if isReady != wasReady {
                if isReady {
                    // Ready as far as the connections go: the input queues may still be unconsumed (lost
                    // with a deleted vhost), and the readiness probe says so until they are.
                    let unconsumed = lostConsumers.keys.sorted()
                    if unconsumed.isEmpty {
                        logger.notice("ready again: broker connections serving")
                    } else {
                        logger.notice("broker connections serving again; not ready until the input queues are consumed again",
                                      metadata: ["queues": "\(unconsumed.joined(separator: ", "))"])
                    }
                } else {
                    logger.warning("not ready", metadata: ["reason": "\(problem ?? "")"])
                }
                wasReady = isReady
            }
            try? await Task.sleep(for: interval)
        }
        // Stopped (the endpoint's run ended): nothing is blocked or lost any more as far as it knows, and
        // a later run starts from there.
        if wasBlocked { brokerBlocked.record(0) }
        if undeclaredCount > 0 { topologyUndeclared.record(0) }
        connectionProblem.withLock { $0 = nil }
    }

    /// Why a lost connection is not back yet, for the readiness reason: a transient failure (the broker
    /// still away) is being recovered; one the broker repeats until an operator acts (a refused login, a
    /// deleted vhost: `isTransient` false) says so, though the transport keeps trying.
    static func lostConnectionReason(_ error: AMQPError?) -> String {
        guard let error else { return "broker connection lost (connecting); recovering" }
        if error.isTransient { return "broker connection lost (\(error)); recovering" }
        return "broker connection lost and the broker refuses to reconnect (\(error)): an operator must fix the "
            + "cause (credentials, permissions, vhost, settings); still retrying"
    }

    /// Reads the backlogs into their gauges (two COUNT queries on indexed columns). A failure (a busy
    /// database) leaves the gauges as they were until the next refresh.
    /// Set while the backlogs cannot be read: the first failure is a warning, the next ones stay quiet
    /// until a read works again. (At debug level, the gauges stopped moving without a word.)
    private let backlogsFailing = Atomic<Bool>(false)

    func refreshBacklogs(_ reader: BacklogReader, logger: Logger) async {
        do {
            let backlog = try await reader.backlog()
            outboxBacklog.record(backlog.outbox)
            timeoutsPending.record(backlog.timeouts)
            if backlogsFailing.exchange(false, ordering: .relaxed) {
                logger.notice("the outbox and timeout backlogs can be read again")
            }
        } catch {
            let alreadyFailing = backlogsFailing.exchange(true, ordering: .relaxed)
            logger.log(level: alreadyFailing ? .debug : .warning,
                       "could not read the outbox and timeout backlogs; their gauges keep their last values",
                       metadata: ["error": "\(error)"])
        }
    }
}
