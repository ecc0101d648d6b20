// The `connection_name=` parameter of the broker URL, which the README lists among the URL's settings of
// every command (no broker needed). Compiled only with SAGA_ENDPOINT_CLI_TESTS (see CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import AMQPTransport
@testable import saga_endpoint
import Testing

@Suite struct CLIConnectionNameTests {
    // Failed before: `run` and `bank` named their connections saga-endpoint(-bank)-consume/-publish and
    // the operator commands theirs saga-endpoint-errors etc. whatever the URL said, so two endpoints told
    // apart by `?connection_name=` looked the same in the management UI and `rabbitmqctl list_connections`.
    @Test func anEndpointNamesItsConnectionsAfterTheURLsConnectionName() {
        #expect(EndpointHost.connectionName(url: "amqp://u:p@h/v?connection_name=payments-east", default: "saga-endpoint")
                == "payments-east")
        #expect(EndpointHost.connectionName(url: "amqp://u:p@h/v", default: "saga-endpoint") == "saga-endpoint")
        #expect(EndpointHost.connectionName(url: "amqp://u:p@h/v?connection_name=", default: "saga-endpoint-bank")
                == "saga-endpoint-bank")
    }

    @Test func anOperatorCommandKeepsTheURLsConnectionName() throws {
        #expect(try BrokerConnection.configuration(url: "amqp://u:p@h/v?connection_name=ops-alice",
                                                   name: "saga-endpoint-errors").connectionName == "ops-alice")
        #expect(try BrokerConnection.configuration(url: "amqp://u:p@h/v", name: "saga-endpoint-errors").connectionName
                == "saga-endpoint-errors")
    }
}
#endif
