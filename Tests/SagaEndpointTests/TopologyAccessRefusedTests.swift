import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Testing

/// A user the broker refuses part of the topology (403 ACCESS_REFUSED): `run` and `topology declare` end
/// with `TopologyDeclarationError`, one line per declaration with the broker's text, which names the
/// resource and the kind of access but not the permission an operator grants (`set_permissions` takes
/// configure, write and read patterns). Each such line now names it.
@Suite("Topology declarations the broker refuses this user", .timeLimit(.minutes(2)))
struct TopologyAccessRefusedTests {
    @Test("a refused declare names the configure permission; a refused binding, write on the queue and read on the exchange")
    func permissionNamed() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.withUser("no-configure", configure: "^$", write: ".*", read: ".*") { user in
            let refused = try await AMQPConnection.connect(url: user.url, connectionName: "no-configure")
            let topology = EndpointTopology(exchanges: [ExchangeDeclaration(name: "ev", kind: .topic)],
                                            queues: [QueueDeclaration(name: "q")])
            do {
                try await topology.declare(on: refused)
                Issue.record("declared without the configure permission")
            } catch {
                let text = "\(error)"
                #expect(text.contains("exchange 'ev': ") && text.contains("the user needs the configure permission on 'ev'"),
                        "\(text)")
                #expect(text.contains("the user needs the configure permission on 'q'"), "\(text)")
            }
            await refused.close()

            try await harness.connection.declareExchange(ExchangeDeclaration(name: "ev", kind: .topic))
            try await harness.connection.declareQueue(QueueDeclaration(name: "q"))
            try await user.permit(configure: ".*", write: ".*", read: "^$")
            let noRead = try await AMQPConnection.connect(url: user.url, connectionName: "no-read")
            let binding = EndpointTopology(bindings: [BindingDeclaration(source: "ev", destination: "q", routingKey: "k")])
            do {
                try await binding.declare(on: noRead)
                Issue.record("bound without the read permission on the exchange")
            } catch {
                #expect("\(error)".contains("the user needs the write permission on 'q' and the read permission on 'ev'"),
                        "\(error)")
            }
            await noRead.close()
        }
        await harness.tearDown()
    }
}
