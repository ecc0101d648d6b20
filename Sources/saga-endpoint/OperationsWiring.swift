import Foundation
import Logging
import Metrics
import Prometheus
import SagaEndpoint
import SagaOperations
import ServiceLifecycle
import UnixSignals

/// Wires metrics, the operations HTTP server and signal handling around an endpoint.
enum OperationsWiring {
    /// Installs the Prometheus metrics backend for the process (once) and returns its registry.
    static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// The `/metrics` and `/health/*` server for `endpoint`: ready = broker connected, database open and
    /// every input queue consumed.
    static func server(host: String, port: Int, registry: PrometheusCollectorRegistry, endpoint: SagaEndpoint,
                       logger: Logger) -> OperationsServer {
        OperationsServer(host: host, port: port, registry: registry, logger: logger) {
            guard let reason = endpoint.notReadyReason else { return .init(isReady: true) }
            return .init(isReady: false, reason: reason)
        }
    }
}

/// Ends the process at once on a second SIGTERM/SIGINT: the first starts a graceful shutdown (stop
/// consuming, finish the batch in flight), an impatient operator's second one does not wait for it.
/// Not a Service of the group: a service that outlived the graceful shutdown would hold the group open.
enum SecondSignalForcesExit {
    static func watch(logger: Logger) -> Task<Void, Never> {
        Task.detached {
            var seen = 0
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                seen += 1
                if seen >= 2 {
                    logger.warning("second \(signal): exiting without waiting for the graceful shutdown")
                    exit(130)
                }
            }
        }
    }
}
