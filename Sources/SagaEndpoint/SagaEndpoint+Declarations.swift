import AMQPTransport
import Logging

// What the endpoint declares at start: its input and error queues, and the configured topology on each
// connection (which records it and declares it again on recovery).
extension SagaEndpoint {
    /// The configured topology, on each connection: each records it and declares it again when it is
    /// re-established, the consuming one before its consumers resume, the publishing one before it
    /// publishes anything (so no event goes to an exchange whose bindings are not back yet). A failure at
    /// start stops the endpoint, naming every declaration that failed.
    func declareTopology(on connections: [AMQPConnection]) async throws {
        guard let topology = configuration.topology, !topology.isEmpty else { return }
        for connection in connections { try await topology.declare(on: connection) }
        logger.info("topology declared; declared again whenever a broker connection recovers", metadata: [
            "exchanges": "\(topology.exchanges.count)", "queues": "\(topology.queues.count)",
            "bindings": "\(topology.bindings.count)"])
    }

    /// An input queue the topology does not list and the broker does not have is declared (plain, durable)
    /// before the topology, since the topology may bind it to an exchange: that is how an endpoint
    /// subscribes to another endpoint's events. It is declared on both connections, so each declares it
    /// again on recovery before the bindings it recorded. Queues the topology lists are left to it (their
    /// arguments are its own).
    func declareInputQueuesOutsideTopology(on connections: [AMQPConnection]) async throws {
        let listed = Set(configuration.topology?.queues.map(\.name) ?? [])
        guard let first = connections.first else { return }
        for queue in configuration.inputQueues where !listed.contains(queue) {
            do {
                _ = try await first.checkQueue(queue)
            } catch let error as AMQPError where error.replyCode == 404 {
                logger.notice("input queue missing; declaring it durable", metadata: ["queue": "\(queue)"])
                for connection in connections { _ = try await connection.declareQueue(QueueDeclaration(name: queue)) }
            }
        }
    }

    /// Input queues must exist (the topology declares them, with their arguments); a missing one is
    /// declared as a plain durable queue. Error queues are declared here.
    func declareQueues(on connection: AMQPConnection) async throws {
        for queue in configuration.inputQueues {
            do {
                let state = try await connection.checkQueue(queue)
                if state.consumerCount > 0 {
                    // Processes on one queue must share one database (its inbox and sagas); one started
                    // from another folder, with its own relative `saga.sqlite`, silently took half of the
                    // bank's replies and stalled transfers. Said here, where it can still be noticed.
                    logger.notice("the input queue already has consumers: every process consuming it must use this same database file",
                                  metadata: ["queue": "\(queue)", "consumers": "\(state.consumerCount)",
                                             "database": "\(Self.absolutePath(configuration.databasePath))"])
                }
            } catch let error as AMQPError where error.replyCode == 404 {
                logger.notice("input queue missing; declaring it durable", metadata: ["queue": "\(queue)"])
                try await connection.declareQueue(QueueDeclaration(name: queue))
            }
            let errorQueue = configuration.errorQueue(for: queue)
            do {
                _ = try await connection.checkQueue(errorQueue)
            } catch let error as AMQPError where error.replyCode == 404 {
                try await connection.declareQueue(QueueDeclaration(name: errorQueue))
            }
        }
    }
}
