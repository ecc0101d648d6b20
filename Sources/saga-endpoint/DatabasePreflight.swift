import Foundation
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
                try await TopologyActions.declare(topology, url: url, connectionName: name, waitForBroker: true,
                                                  logger: logger)
            }
            return true
        } catch where Task.isShuttingDownGracefully {
            logger.info("graceful shutdown before the topology was declared; stopping")
            return false
        }
    }
}

/// Checks that the database can be opened and written before anything else happens: a missing folder or
/// a read-only file used to surface as a bare "unable to open database file" after the topology had been
/// declared (and SQLite opens a read-only file without a word, failing only at the first write).
enum DatabasePreflight {
    static func check(_ path: String, logger: Logger) throws {
        func fail(_ reason: String) -> CLIError {
            CLIError("cannot use the database \(path): \(reason) (check --database, the environment variable or "
                     + "the config file)")
        }
        let folder = (path as NSString).deletingLastPathComponent
        // The folder too: SQLite creates the -wal and -shm files beside the database.
        guard access(folder.isEmpty ? "." : folder, W_OK | X_OK) == 0 else {
            throw fail("its folder \(folder.isEmpty ? "." : folder) \(errno == ENOENT ? "does not exist" : "is not writable")")
        }
        // A missing file is created by the endpoint; an existing one must be a writable database.
        guard FileManager.default.fileExists(atPath: path) else { return }
        guard access(path, R_OK | W_OK) == 0 else { throw fail("the file is not writable") }
        do {
            let connection = try SQLiteConnection(path: path, logger: logger)  // reads the header: a database?
            connection.close()
        } catch {
            throw fail(error.message)
        }
    }
}
