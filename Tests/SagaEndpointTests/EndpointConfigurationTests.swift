import SagaEndpoint
import Testing

@Suite("EndpointConfiguration")
struct EndpointConfigurationTests {
    // Found by a code review: a host app that logged its configuration logged the broker's password.
    @Test("printed or logged, it hides the broker's password and shows the rest")
    func descriptionHidesThePassword() {
        let configuration = EndpointConfiguration(amqpURL: "amqps://app:s3cret-pw@broker:5671/prod?keyfile=/etc/app/key.pem",
                                                  inputQueues: ["orders"], databasePath: "/var/lib/orders.sqlite")
        for text in ["\(configuration)", String(reflecting: configuration)] {
            #expect(!text.contains("s3cret-pw"))
            #expect(text.contains("amqps://app:***@broker:5671/prod"))
            #expect(!text.contains("key.pem"), "as the endpoint logs it: no query")
            #expect(text.contains("inputQueues: [\"orders\"]"))
            #expect(text.contains("databasePath: \"/var/lib/orders.sqlite\""))
        }
    }
}
