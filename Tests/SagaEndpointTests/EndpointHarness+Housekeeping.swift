import AMQPTransport
import BrokerTestSupport
import Logging
@testable import SagaEndpoint
import Sagas
import TestSagaSupport

extension EndpointHarness {
    /// What a test of housekeeping's outbox passes drives by hand: the store of the endpoint on `database`
    /// (whose handlers ignore `Explode`, the rows' type) and a publishing connection of its own.
    func outboxHousekeeping(_ database: String) async throws -> (registry: HandlerRegistry, worker: StoreWorker,
                                                                  publisher: AMQPConnection) {
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in }
        let dispatcher = MessageDispatcher(registry: registry, endpointAddress: database)
        let worker = try await StoreWorker.open(path: databasePath(database), durable: true,
                                                dispatcher: dispatcher, logger: Logger(label: database))
        let publisher = try await AMQPConnection.connect(url: url, connectionName: "\(database)-housekeeping")
        return (registry, worker, publisher)
    }
}
