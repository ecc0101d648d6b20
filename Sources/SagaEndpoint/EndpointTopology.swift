public import AMQPTransport

/// The exchanges, queues and bindings an endpoint's messages travel through (`saga-endpoint` reads them
/// from RabbitMQ definitions files, `topology/*.json`).
///
/// Given in `EndpointConfiguration.topology`, they are declared when the endpoint starts, on both of its
/// broker connections, so each connection records them and declares them again whenever it is
/// re-established (broker restart, node reset, vhost deleted and created again, connection closed by an
/// operator): on the consuming connection before its consumers resume, on the publishing one before it
/// publishes anything, so no event leaves for an exchange whose bindings are not back yet. What the broker
/// refuses then is retried and makes the endpoint not ready (see `SagaEndpoint.notReadyReason`).
public struct EndpointTopology: Sendable, Equatable {
    public var exchanges: [ExchangeDeclaration]
    public var queues: [QueueDeclaration]
    public var bindings: [BindingDeclaration]

    public init(exchanges: [ExchangeDeclaration] = [], queues: [QueueDeclaration] = [],
                bindings: [BindingDeclaration] = []) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }

    public var isEmpty: Bool { exchanges.isEmpty && queues.isEmpty && bindings.isEmpty }

    /// Exchange names starting with this are RabbitMQ's own: they can only be checked, not declared.
    public static let reservedPrefix = "amq."

    /// Declares everything on `connection` (which records it for its recoveries), in order: exchanges,
    /// queues, bindings. Tries every item and throws one error listing all that failed.
    public func declare(on connection: AMQPConnection) async throws(TopologyDeclarationError) {
        var failures: [TopologyDeclarationError.Failure] = []
        for exchange in exchanges {
            do {
                if exchange.name.hasPrefix(Self.reservedPrefix) {
                    try await connection.checkExchange(exchange.name)
                } else {
                    try await connection.declareExchange(exchange)
                }
            } catch {
                failures.append(.init(declaration: .exchange(exchange), error: error))
            }
        }
        for queue in queues {
            do {
                try await connection.declareQueue(queue)
            } catch {
                failures.append(.init(declaration: .queue(queue), error: error))
            }
        }
        for binding in bindings {
            do {
                try await connection.bind(binding)
            } catch {
                failures.append(.init(declaration: .binding(binding), error: error))
            }
        }
        guard failures.isEmpty else { throw TopologyDeclarationError(failures: failures) }
    }
}
