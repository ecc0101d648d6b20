import AMQPTransport
import Foundation
import ServiceLifecycle

// The set-up at start (declaring the topology and the queues, consuming the input queues) on connections
// that can be lost meanwhile: a lost socket there is waited out as one before the connect is, not taken for
// a refusal. Before, it ended the endpoint (exit 1, "cannot declare the topology"): a broker restart or a
// network blip during a deploy became a crash loop under a supervisor, or an endpoint left down.
extension SagaEndpoint {
    /// Runs `step`; when it fails because a connection was lost (and nothing else), waits for `connections`
    /// to be back and runs it again. Nil when a graceful shutdown comes first. A refusal (404, 406, 403, …)
    /// is thrown as before: it stops the endpoint, naming what failed.
    func againAfterConnectionLoss<T: Sendable>(_ step: String, on connections: [AMQPConnection],
                                               _ body: () async throws -> T) async throws -> T? {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch where Self.isConnectionLoss(error) && !isStopping {
                attempt += 1
                logger.warning("broker connection lost while setting up; doing it again once the connection is back",
                               metadata: ["step": "\(step)", "attempt": "\(attempt)", "error": "\(error)"])
                guard try await waitUntilBack(connections) else { return nil }
            }
        }
    }

    /// Waits until every connection is connected again (its recovery retries for ever, logging its failures
    /// and naming refusals); false when a graceful shutdown comes first.
    private func waitUntilBack(_ connections: [AMQPConnection]) async throws -> Bool {
        do {
            for connection in connections {
                try await cancelWhenGracefulShutdown {
                    while true {
                        do {
                            return try await connection.waitUntilConnected(timeout: .seconds(60))
                        } catch let error as AMQPError where error.code != .closed {
                            continue   // still recovering
                        }
                    }
                }
            }
            return true
        } catch where Task.isShuttingDownGracefully {
            return false
        }
    }

    /// A failure that only says a connection was lost or is recovering (also as every failure of a topology
    /// declaration): nothing the broker refused.
    static func isConnectionLoss(_ error: any Error) -> Bool {
        if let error = error as? AMQPError {
            return MessageSession.isLostConnection(error)
        }
        if let error = error as? TopologyDeclarationError {
            return !error.failures.isEmpty && error.failures.allSatisfy { isConnectionLoss($0.error) }
        }
        return false
    }
}
