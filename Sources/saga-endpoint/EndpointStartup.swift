import Logging
import SagaEndpoint
import SagaStore
import ServiceLifecycle

/// The endpoint's service in `run` and `bank`: declares the topology (waiting for the broker while it
/// cannot be reached), then runs the endpoint. Declaring used to happen before the service group started,
/// so while the broker was down the operations server did not answer (an orchestrator's liveness probe
/// failed) and SIGTERM killed the process (exit 143) instead of stopping it. Inside the group, both work
/// from the start: /health/live answers 200, /health/ready 503, and a signal ends the wait (exit 0).
struct TopologyThenEndpoint: Service {
    let topology: Topology?
    let amqpURL: String
    let connectionName: String
    let endpoint: SagaEndpoint
    let logger: Logger

    func run() async throws {
        if let topology {
            guard try await declareUnlessShuttingDown(topology) else { return }
        }
        try await endpoint.run()
    }

    /// False when a graceful shutdown came first.
    private func declareUnlessShuttingDown(_ topology: Topology) async throws -> Bool {
        let (url, name, logger) = (amqpURL, "\(connectionName)-topology", self.logger)
        do {
            try await cancelWhenGracefulShutdown {
                let connection = try await BrokerConnection.open(url: url, name: name, waitForBroker: true, logger: logger)
                do {
                    try await TopologyActions.declare(topology, on: connection, logger: logger)
                } catch {
                    await connection.close()
                    throw error
                }
                await connection.close()
            }
            return true
        } catch where Task.isShuttingDownGracefully {
            logger.info("graceful shutdown before the topology was declared; stopping")
            return false
        }
    }
}

/// Checks that the database can be opened before anything else happens: a missing folder or a read-only
/// file used to surface as a bare "unable to open database file" after the topology had been declared.
enum DatabasePreflight {
    static func check(_ path: String, logger: Logger) throws {
        do {
            // Creates the file when missing (the endpoint would); never migrates (the endpoint does).
            let connection = try SQLiteConnection(path: path, logger: logger)
            connection.close()
        } catch {
            throw CLIError("cannot open the database \(path): \(error.message) (check --database, the environment "
                           + "variable or the config file; its folder must exist and be writable)")
        }
    }
}
